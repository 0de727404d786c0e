"""The tax side (税务端) of the reconciliation queue, for the sandbox: a consumer that books
each confirmation record once in its own store and acknowledges it back to the API."""
