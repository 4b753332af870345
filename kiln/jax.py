"""``kiln.jax.jit``: compile a JAX function with kiln on its first call per input signature.

    @kiln.jax.jit
    def mlp(x, params):
        ...

    y = mlp(x, params)          # traces, compiles, runs natively; later calls of that signature just run
    @kiln.jax.jit(target="cpu", opt_level=3)
    def f(x): ...

Every argument must be an array or a pytree of arrays (numpy or JAX); arguments named in
``static_argnums`` / ``static_argnames`` are Python values baked into the compiled model instead
(hashable; each distinct value compiles once). A signature is the pytree structure of the arguments,
each leaf's shape and dtype, and the static values. Results come back as numpy arrays in the
function's output pytree structure. Importing this module imports jax.
"""
from __future__ import annotations

import functools
import inspect

import jax
import numpy as np

from .errors import ConversionError
from .frontends.jax.trace import param_names, convert, is_array

__all__ = ["jit", "Jitted"]


def jit(fn=None, *, target="cpu", static_argnums=(), static_argnames=(), **compile_options):
    """Decorator: ``fn`` compiled by :func:`kiln.compile` for ``target`` on first use per signature.

    ``compile_options`` go to :func:`kiln.compile` (``opt_level``, ``num_threads``, ...).
    """
    if fn is None:
        return lambda f: Jitted(f, target, static_argnums, static_argnames, compile_options)
    return Jitted(fn, target, static_argnums, static_argnames, compile_options)


class Jitted:
    """A JAX function with a cache of compiled models, one per input signature."""

    def __init__(self, fn, target, static_argnums, static_argnames, compile_options):
        self.fn = fn
        self.target = target
        self.static_argnums = {static_argnums} if isinstance(static_argnums, int) else set(static_argnums)
        self.static_argnames = {static_argnames} if isinstance(static_argnames, str) else set(static_argnames)
        self.compile_options = dict(compile_options)
        self.compiled: dict = {}  # signature -> (CompiledModel, output treedef, leaf dtypes)
        try:
            self._sig = inspect.signature(fn)
        except (TypeError, ValueError):
            self._sig = None
        functools.update_wrapper(self, fn)

    def cache_size(self) -> int:
        """How many signatures have been compiled."""
        return len(self.compiled)

    def __call__(self, *args, **kwargs):
        dyn_args, dyn_kwargs, static = self._split(args, kwargs)
        leaves, tree = jax.tree_util.tree_flatten((dyn_args, dyn_kwargs))
        for i, leaf in enumerate(leaves):
            if not is_array(leaf):
                raise ConversionError(
                    f"{self.__name__}: argument leaf {i} is a {type(leaf).__name__}, not an array; kiln.jax.jit "
                    f"takes arrays (or pytrees of arrays); mark Python values with static_argnums/static_argnames")
        key = (tree, tuple((tuple(np.shape(x)), np.dtype(x.dtype).str) for x in leaves), static)
        entry = self.compiled.get(key)
        if entry is None:
            entry = self.compiled[key] = self._compile(dyn_args, dyn_kwargs, static)
        model, out_tree, in_dtypes = entry
        arrays = [np.asarray(x, dtype=dt) for x, dt in zip(leaves, in_dtypes)]
        outs = model(*arrays)
        return jax.tree_util.tree_unflatten(out_tree, [np.asarray(o) for o in outs])

    def _split(self, args, kwargs):
        """(array args, array kwargs, hashable static values) of one call."""
        if not self.static_argnums and not self.static_argnames:
            return args, kwargs, ()
        n = len(args)
        nums = {i % n if n else i for i in self.static_argnums if -n <= i < n}
        static = tuple((i, args[i]) for i in sorted(nums)) + tuple(
            sorted((k, v) for k, v in kwargs.items() if k in self.static_argnames))
        try:
            hash(static)
        except TypeError as e:
            raise ConversionError(f"{self.__name__}: static arguments must be hashable: {e}") from None
        return (tuple(a for i, a in enumerate(args) if i not in nums),
                {k: v for k, v in kwargs.items() if k not in self.static_argnames}, static)

    def _compile(self, args, kwargs, static):
        from .compiler.compile import compile as kiln_compile

        fn = _with_static(self.fn, args, kwargs, static)
        graph, out_tree = convert(fn, tuple(args) + tuple(kwargs[k] for k in sorted(kwargs)))
        model = kiln_compile(graph, target=self.target, **self.compile_options)
        dtypes = [graph.types[name].dtype.np for name in graph.inputs]
        return model, out_tree, dtypes


def _with_static(fn, args, kwargs, static):
    """A function of the array arguments alone (positional, then keyword ones in sorted order, the order
    jax flattens them in), with the static ones bound; its parameters keep the user's names."""
    static_pos = {k: v for k, v in static if isinstance(k, int)}
    static_kw = {k: v for k, v in static if isinstance(k, str)}
    n_total = len(args) + len(static_pos)
    kw_names = sorted(kwargs)
    names = [n for i, n in enumerate(param_names(fn, n_total)) if i not in static_pos] + kw_names

    def call(*arrays):
        it = iter(arrays[:len(args)])
        full = [static_pos[i] if i in static_pos else next(it) for i in range(n_total)]
        return fn(*full, **dict(zip(kw_names, arrays[len(args):])), **static_kw)

    call.__name__ = getattr(fn, "__name__", "fn")
    call.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    return call
