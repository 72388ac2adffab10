"""A real tailnet for the tests: Tailscale's own binaries (built from the pinned release), joined to a
control server on this machine (Tailscale's test control server, a DERP relay, and grants compiled by
headscale's policy engine), with devices standing for people's laptops and tagged machines."""
