-- The console's own PostgreSQL role: it reads and writes the console's tables but owns none of them,
-- so it can neither UPDATE, DELETE nor TRUNCATE the kill-switch audit, nor drop or disable the
-- trigger that keeps the audit append-only (only a table's owner or a superuser can).
--
-- Run it as the role that owns the tables (the one `manage.py migrate` runs as), after every migrate
-- (it is idempotent; creating the role needs CREATEROLE the first time):
--
--   psql "$OWNER_DATABASE_URL" -v console_role=cdb_console -v console_password='...' \
--        -f deploy/postgres/console-role.sql
--
-- Then run the console (web, worker, beat, CLI) with DATABASE_URL naming cdb_console, and migrate
-- with the owner's DATABASE_URL.
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'console_role', :'console_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'console_role') \gexec

SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'console_role') \gexec
GRANT USAGE ON SCHEMA public TO :"console_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"console_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"console_role";
-- Tables the next migrations create get the same (when this runs as their owner).
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"console_role";
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO :"console_role";

-- The audit: records are appended, never changed; the chain's head row is updated, never removed.
REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON killswitch_auditrecord FROM :"console_role";
REVOKE DELETE, TRUNCATE, TRIGGER, REFERENCES ON killswitch_audithead FROM :"console_role";
