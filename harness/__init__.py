"""What the tests and the benchmark share: the stacks they run (stacks), the real binaries started on
loopback (processes, loopback), the stub backends and SSO (fakes), throwaway certificates (certs), the
program run under Pulumi mocks (program_run), and the real Docker engine driven as the provider would
drive it (engine). Nothing in tailnet_llm_gateway/ or policy/ imports it."""
