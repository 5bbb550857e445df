"""What the service and its callers must read alike: the envelope format, the ARN rules and the
form of a RAM proof. It lives here once; the caller's package (`client/vend_client/wire`) is a
symbolic link to this folder, so these modules import nothing but the standard library and what
both sides install (`cryptography`, the SDK's tea-openapi and credentials), and each other only
relatively."""
