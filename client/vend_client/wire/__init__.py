"""What the service and its callers must read alike: the envelope format, the ARN rules and the
form of a RAM proof. The files live here, in the caller's package, so that a copy of `client/`
alone builds a complete package; the service's `shared/wire` is a symbolic link to this folder.
So these modules import nothing but the standard library and what both sides install
(`cryptography`, the SDK's tea-openapi and credentials), and each other only relatively."""
