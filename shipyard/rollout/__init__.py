"""Rollouts: a persisted state machine that moves traffic step by step and decides by rules.

``controller.Controller`` proposes transitions; ``policy.decide`` judges them with the ordered rules
of ``policy.POLICY``; ``analysis`` measures the live window from the gateway's request log.
"""
