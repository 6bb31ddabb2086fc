// Local Unleash server for the gateway's Unleash flag-source integration tests.
//
//   cd tests && UNLEASH_PORT=4242 \
//     UNLEASH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/unleash_test \
//     UNLEASH_ADMIN_TOKEN='*:*.admin-secret' \
//     UNLEASH_CLIENT_TOKEN='default:development.client-secret' \
//     node unleash/server.mjs
//
// See README.md next to this file for the env vars and the HTTP API.

import postgres from 'postgres';

const log = (msg) => process.stderr.write(`[unleash/server.mjs] ${msg}\n`);

function fail(msg) {
    log(msg);
    process.exit(2);
}

function requireEnv(name) {
    const v = process.env[name];
    if (v === undefined || v === '') fail(`missing env ${name}`);
    return v;
}

const port = Number.parseInt(process.env.UNLEASH_PORT ?? '4242', 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
    fail(`invalid UNLEASH_PORT=${process.env.UNLEASH_PORT}`);
}
const host = process.env.UNLEASH_HOST || '127.0.0.1';
const databaseUrl = requireEnv('UNLEASH_DATABASE_URL');
const adminToken = requireEnv('UNLEASH_ADMIN_TOKEN');
const clientToken = requireEnv('UNLEASH_CLIENT_TOKEN');

// Token secrets are "<project>:<environment>.<random>", the same parsing Unleash
// uses for INIT_ADMIN_API_TOKENS / INIT_BACKEND_API_TOKENS.
function parseToken(secret, type) {
    const m = /^([^:.]+):([^:.]+)\.(.+)$/.exec(secret);
    if (!m) fail(`${type} token must look like <project>:<environment>.<secret>, got ${JSON.stringify(secret)}`);
    const [, project, environment] = m;
    if (type === 'admin' && (project !== '*' || environment !== '*')) {
        fail(`UNLEASH_ADMIN_TOKEN must look like *:*.<secret>`);
    }
    if (type === 'backend' && environment === '*') {
        fail(`UNLEASH_CLIENT_TOKEN must name one environment, e.g. default:development.<secret>`);
    }
    return {
        secret,
        type,
        projects: [project],
        environment,
        tokenName: `studyflow-tests-${type}`,
    };
}
const initApiTokens = [parseToken(adminToken, 'admin'), parseToken(clientToken, 'backend')];

// --- database: create it if missing ------------------------------------------
const dbUrl = new URL(databaseUrl);
const dbName = decodeURIComponent(dbUrl.pathname.replace(/^\//, ''));
if (!dbName) fail('UNLEASH_DATABASE_URL must name a database');
{
    const maintenance = new URL(dbUrl);
    maintenance.pathname = '/postgres';
    const sql = postgres(maintenance.toString(), { max: 1, onnotice: () => {} });
    try {
        const rows = await sql`select 1 from pg_database where datname = ${dbName}`;
        if (rows.length === 0) {
            try {
                await sql`create database ${sql(dbName)}`;
                log(`created database ${dbName}`);
            } catch (e) {
                if (e.code !== '42P04') throw e; // duplicate_database: lost a race, fine
            }
        }
    } catch (e) {
        fail(`cannot prepare database ${dbName}: ${e.message}`);
    } finally {
        await sql.end({ timeout: 5 });
    }
}

// --- Unleash ------------------------------------------------------------------
// No internet: no version check, no telemetry. Some defaults are read from the
// environment at module load time, so set them before importing unleash-server.
process.env.CHECK_VERSION = 'false';
process.env.SEND_TELEMETRY = 'false';
process.env.REQUEST_LOGGER_ENABLE ??= 'false';
// pg prints a DeprecationWarning for Unleash's own query pattern; keep stderr quiet.
if ((process.env.UNLEASH_LOG_LEVEL || 'warn') !== 'debug') process.noDeprecation = true;
// Unleash defaults to ssl {rejectUnauthorized:false}, which fails against a
// Postgres without SSL (e.g. the postgres Docker image). Use plain TCP unless the
// URL asks for TLS via ?sslmode=... or DATABASE_SSL is set.
const dbOptions =
    dbUrl.searchParams.has('sslmode') || process.env.DATABASE_SSL != null ? {} : { ssl: false };

const { start, SYSTEM_USER_AUDIT } = await import('unleash-server');

let unleash;
try {
    unleash = await start({
        databaseUrl,
        db: dbOptions,
        logLevel: process.env.UNLEASH_LOG_LEVEL || 'warn',
        versionCheck: { enable: false },
        server: {
            host,
            port,
            unleashUrl: `http://${host}:${port}`,
            enableRequestLogger: false,
            // we install our own SIGTERM/SIGINT handlers below
            gracefulShutdownEnable: false,
        },
        authentication: {
            // normal username/password auth for the UI (admin / unleash4all by
            // default, or UNLEASH_DEFAULT_ADMIN_USERNAME/_PASSWORD)
            type: 'open-source',
            enableApiToken: true,
            createAdminUser: true,
            initApiTokens,
        },
    });
} catch (e) {
    fail(`unleash failed to start: ${e?.stack ?? e}`);
}

// Unleash only applies initApiTokens when the api_tokens table is empty. When an
// existing database is reused with different token values, add the missing ones.
const { apiTokenService } = unleash.services;
for (const token of initApiTokens) {
    if (!(await apiTokenService.getToken(token.secret))) {
        await apiTokenService.insertNewApiToken(token, SYSTEM_USER_AUDIT);
        log(`added ${token.type} token ${token.tokenName}`);
    }
}

let stopping = false;
async function shutdown(signal) {
    if (stopping) return;
    stopping = true;
    try {
        await unleash.stop();
        process.exit(0);
    } catch (e) {
        log(`error while stopping on ${signal}: ${e?.message ?? e}`);
        process.exit(1);
    }
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

const actualPort = unleash.server.address().port;
console.log(`unleash ready on http://${host}:${actualPort}`);
