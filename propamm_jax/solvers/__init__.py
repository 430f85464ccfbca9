"""Arbitrage sizing and N-way routing: closed forms (fast, differentiable) and the reference's."""
