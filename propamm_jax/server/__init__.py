"""The competition server: a job API, a persistent queue with leases, workers that run jobs
through the library (the same calls as the CLI), a leaderboard and a dashboard.

Modules: `db` (tables, migrations), `auth` (teams, tokens), `queue` (leases), `jobs` (one
job through the library), `worker` (the lease loop), `models` (request bodies), `api` (the
FastAPI app, token check, access lookups), `routes_jobs`, `routes_competitions`, `views`
(what a team sees), `commands` (`serve`, `worker`, `team add`), `static/` (the dashboard).
The CLI imports only `commands`, which imports FastAPI, uvicorn and SQLAlchemy (the `server`
extra) inside the commands.
"""
