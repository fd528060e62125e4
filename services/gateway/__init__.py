"""gateway: the HTTP face of propdesk. It authenticates the caller, checks per-object scope,
validates bodies with the owning service's schemas, makes the call over RPC with a deadline,
and answers JSON or an RFC 9457 problem. It holds no business state of its own, only the
Idempotency-Key replay store."""
