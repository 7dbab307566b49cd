"""Wire formats shared with the torch processes: msgpack headers plus raw byte frames. No jax, no torch here.

`synthesis` is the data-server protocol, `rollout` the vLLM rollout worker's; `curve_keys` makes and loads the
ZeroMQ CURVE keys that guard any non-loopback bind, and `endpoints` holds the binding policy both servers share.
"""
