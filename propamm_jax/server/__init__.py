"""The competition server: a job API, a persistent queue with leases, workers that run jobs
through the library (the same calls as the CLI), a leaderboard and a dashboard.

Modules: `db` (tables, migrations), `auth` (teams, tokens), `queue` (leases), `jobs` (one job
through the library), `worker` (the lease loop), `models` (request bodies), `api` (FastAPI),
`serve` (the `serve`, `worker` and `team add` commands), `static/` (the dashboard).
Nothing here is imported by the rest of the package; FastAPI and SQLAlchemy are the `server`
extra.
"""
