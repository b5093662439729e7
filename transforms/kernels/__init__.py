"""Kernels of the Genesis corruptions: one compiled CPU form (``*_cpu``, numba) and one torch form
(``*_torch``, any device) per operation. A kernel executes a plan its transform drew (boxes, curve,
noise key); the rules of the method live with the transforms (``docs/method.md`` §2)."""
