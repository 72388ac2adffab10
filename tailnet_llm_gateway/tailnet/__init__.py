"""The tailnet policy: the gateway's entries (`entries`), merged into the user's own policy file
(`merge`), and that policy's `tests` checked offline (`check`); `policy` ties them together. Pure: no
Pulumi, no network."""
