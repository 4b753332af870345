"""PyTorch models and inputs the torch frontend must refuse, with the message checked."""
import inspect

import pytest

torch = pytest.importorskip("torch")

import torch.nn as nn  # noqa: E402
from torch.export import Dim  # noqa: E402

import kiln  # noqa: E402
from kiln.frontends.torch import from_torch  # noqa: E402


def _line_of(fn, text: str) -> int:
    """The line number in this file of the source line of ``fn`` that contains ``text``."""
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, ln in enumerate(lines) if text in ln and "_line_of" not in ln)


class TwoUnsupported(nn.Module):
    def forward(self, x):
        y = torch.linalg.inv(x)
        z = torch.linalg.det(x)
        return y * z[:, None, None] + torch.relu(x)


def test_every_unsupported_op_is_named_with_its_line():
    with pytest.raises(kiln.UnsupportedOperatorError) as info:
        from_torch(TwoUnsupported(), (torch.randn(2, 3, 3),))
    err = info.value
    ops = [u[0] for u in err.unsupported]
    assert ops == ["aten.linalg_inv_ex.default", "aten._linalg_det.default"]
    inv_line = _line_of(TwoUnsupported.forward, "linalg.inv")
    det_line = _line_of(TwoUnsupported.forward, "linalg.det")
    assert err.unsupported[0][3] == f"test_torch_errors.py:{inv_line} in forward: y = torch.linalg.inv(x)"
    assert err.unsupported[1][3] == f"test_torch_errors.py:{det_line} in forward: z = torch.linalg.det(x)"
    assert all(u[1] is None and u[2] for u in err.unsupported)  # (op, None, node name, location)
    assert "TwoUnsupported uses 2 unsupported operator(s)" in str(err)


def test_unsupported_op_through_kiln_compile():
    with pytest.raises(kiln.UnsupportedOperatorError, match="aten._fft_r2c.default"):
        kiln.compile(lambda x: torch.fft.rfft(x).abs(), example_inputs=(torch.randn(8),))


class Branch(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # a Python branch on a tensor's value
            return x * 2
        return x - 1


def test_data_dependent_branch_is_one_paragraph(capfd):
    with pytest.raises(kiln.ConversionError) as info:
        from_torch(Branch(), (torch.randn(4),))
    msg = str(info.value)
    line = _line_of(Branch.forward, "if x.sum()")
    assert msg.startswith("torch.export could not trace Branch")
    assert f"test_torch_errors.py:{line} in forward" in msg
    assert "data-dependent" in msg and "torch.where" in msg
    assert "\n" not in msg and "Traceback" not in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no torch traceback chained on
    assert "def forward" not in capfd.readouterr().err  # torch's partial graph is not printed either


def test_boolean_mask_is_data_dependent():
    with pytest.raises(kiln.ConversionError, match=r"aten.index.Tensor at node 'index' \(test_torch_errors.py:\d+ "
                                                   r"in forward: .*x\[x > 0\].*boolean mask"):
        from_torch(lambda x: x[x > 0], (torch.randn(5),))


def test_dynamic_dim_fixed_by_the_model():
    with pytest.raises(kiln.ConversionError, match=r"could not trace .*Constraints violated \(batch\)"):
        from_torch(lambda x: x.view(4, -1), (torch.randn(4, 3),), dynamic_shapes=({0: Dim("batch")},))


def test_size_that_is_not_a_polynomial():
    line = _line_of(test_size_that_is_not_a_polynomial, "* 1.5,")
    with pytest.raises(kiln.ConversionError, match=rf"aten.arange.start_step at node 'arange' \(test_torch_errors.py:"
                                                   rf"{line} in forward: .*\(w//2\): a division that is not exact"):
        from_torch(lambda x: torch.arange(x.shape[2] // 2) * 1.5,
                   (torch.randn(2, 3, 8),), dynamic_shapes=({2: Dim("w", min=4)},))


def test_wrong_number_of_example_inputs():
    with pytest.raises(ValueError, match=r"example_inputs has 2 input\(s\) but Branch.forward\(x\) cannot take them"):
        from_torch(Branch(), (torch.randn(4), torch.randn(4)))
    with pytest.raises(ValueError, match="needs example_inputs"):
        from_torch(Branch(), None)


def test_unsupported_dtype():
    with pytest.raises(kiln.ConversionError, match="complex64 has no kiln equivalent"):
        from_torch(lambda x: x * 2, (torch.randn(3, dtype=torch.complex64),))


def test_backend_options_are_checked():
    from kiln.frontends.torch.backend import kiln_backend

    gm = torch.fx.symbolic_trace(lambda x: x + 1)
    with pytest.raises(ValueError, match="unknown option"):
        kiln_backend(gm, [torch.zeros(1)], options={"targte": "cpu"})
