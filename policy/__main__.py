"""The CrossGuard pack: `pulumi preview --policy-pack policy`. Only builds the pack (which serves and
blocks); the rules live in gateway_rules.py so tests can import them."""

from gateway_rules import POLICIES
from pulumi_policy import PolicyPack

PolicyPack(name="tailnet-llm-gateway", policies=POLICIES)
