"""What only a laptop runs: the `vend` command, and the stand-ins for Function Compute (the HTTP
trigger's event, FC's invoke API for `vend-events`, the handler's context) that `vend local` and
the tests serve the functions with. Never packaged into the function."""
