//! The Casbin adapter table in PostgreSQL (`ptype, v0..v5`, the schema the
//! Go, Node, Python and Rust adapters write), followed with LISTEN/NOTIFY.
//!
//! A read is one `REPEATABLE READ` transaction: a cheap fingerprint of the
//! table (row count and the sum of the rows' `xmin`, which every insert,
//! update and delete moves) and, when it differs from the last read or the
//! read is forced, every row ordered by `id`.
//!
//! With the change log `authzd store init` installs (`<table>_changes`,
//! written by a row trigger in commit order), a replica that has read the
//! table once reads only the log entries after the last one it applied:
//! the rows changed, not the table. A gap in the log (entries pruned, a
//! rolled-back writer's number), a `TRUNCATE`, or too many entries at once
//! fall back to a full read.

use std::{str::FromStr, sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, config::SslMode};

use super::{Fetched, Read, RowChange, StoreError, Wake, push_field, redact};
use crate::config::PolicyConfig;

/// A connection to the store, or the means to make one.
pub struct Follower {
    config: Config,
    url: String,
    table: String,
    channel: String,
    conn: Option<Conn>,
    /// The fingerprint of the last read, with the connection it was read on.
    fingerprint: Option<(i64, String)>,
    /// The last change-log entry applied (`None`: read the table whole next).
    position: Option<i64>,
    /// A notification came since the last read: something changed, so the
    /// cheap check is skipped (the change log is still read, not the table).
    notified: bool,
}

struct Conn {
    client: Client,
    notes: mpsc::UnboundedReceiver<Note>,
    columns: Columns,
    /// The change log, when `store init` installed one (quoted name).
    log: Option<String>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

enum Note {
    Notified,
    Lost(String),
}

/// The table's columns we read: `v0..vN` as far as they go, and whether it has an `id`.
#[derive(Debug, Clone)]
struct Columns {
    values: usize,
    id: bool,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Follower {
    pub fn new(cfg: &PolicyConfig) -> Result<Follower, StoreError> {
        let raw = cfg.store.as_deref().unwrap_or_default();
        let url = redact(raw);
        let mut config = Config::from_str(raw).map_err(|e| StoreError {
            store: url.clone(),
            message: format!("invalid connection URL: {e}"),
        })?;
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .application_name("authzd");
        Ok(Follower {
            config,
            url,
            table: cfg.table.clone(),
            channel: cfg.channel.clone(),
            conn: None,
            fingerprint: None,
            position: None,
            notified: false,
        })
    }

    fn err(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError {
            store: self.url.clone(),
            message: message.to_string(),
        }
    }

    /// Connects (TLS when the URL says `sslmode=require`), checks the table
    /// and starts listening on the channel.
    async fn connect(&mut self) -> Result<(), StoreError> {
        let (client, driver, notes) = self.open().await?;
        let columns = columns(&client, &self.table)
            .await
            .map_err(|m| self.err(m))?;
        client
            .batch_execute(&format!("LISTEN {}", quote(&self.channel)))
            .await
            .map_err(|e| db_err(&self.url, e))?;
        let log = match columns.id {
            true => change_log(&client, &self.table, &columns).await,
            false => None,
        };
        self.conn = Some(Conn {
            client,
            notes,
            columns,
            log,
            driver,
        });
        self.fingerprint = None;
        self.position = None;
        Ok(())
    }

    /// A connection (TLS when the URL says `sslmode=require`), its driver
    /// task, and what that task hears (notifications, the connection's end).
    async fn open(
        &self,
    ) -> Result<
        (
            Client,
            tokio::task::JoinHandle<()>,
            mpsc::UnboundedReceiver<Note>,
        ),
        StoreError,
    > {
        let (tx, notes) = mpsc::unbounded_channel();
        let (client, driver) = if self.config.get_ssl_mode() == SslMode::Require {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(
                tls_config().map_err(|m| self.err(m))?,
            );
            let (client, connection) = self
                .config
                .connect(tls)
                .await
                .map_err(|e| db_err(&self.url, e))?;
            (client, drive(connection, tx))
        } else {
            let (client, connection) = self
                .config
                .connect(NoTls)
                .await
                .map_err(|e| db_err(&self.url, e))?;
            (client, drive(connection, tx))
        };
        Ok((client, driver, notes))
    }

    pub async fn sync(&mut self, force: bool) -> Result<Option<Read>, StoreError> {
        if self.conn.is_none() {
            self.connect().await?;
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(self.err("not connected"));
        };
        // Notifications nobody waited for (Lambda reads only on invocation):
        // any of them means the cheap check can be skipped.
        let mut notified = std::mem::take(&mut self.notified);
        while let Ok(note) = conn.notes.try_recv() {
            match note {
                Note::Notified => notified = true,
                Note::Lost(m) => {
                    self.disconnect();
                    return Err(self.err(format!("connection lost: {m}")));
                }
            }
        }
        // With a change log and a position, read only what changed.
        if let (Some(log), Some(position), false) = (&conn.log, self.position, force) {
            match read_log(&conn.client, log, position, conn.columns.values).await {
                Ok(Logged::Nothing) => return Ok(None),
                Ok(Logged::Changes(changes, last)) => {
                    self.position = Some(last);
                    return Ok(Some(Read::Rows(changes)));
                }
                Ok(Logged::Gap(why)) => {
                    tracing::info!(store = %self.url, why, "the change log cannot be followed; reading the table whole");
                }
                Err(e) => {
                    self.disconnect();
                    return Err(db_err(&self.url, e));
                }
            }
        }
        let force = force || notified || self.position.is_some();
        let table = quote_table(&self.table);
        let log = conn.log.clone();
        let read = async {
            let tx = conn
                .client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let row = tx
                .query_one(
                    &format!(
                        "SELECT count(*)::int8, coalesce(sum(xmin::text::int8), 0)::text FROM {table}"
                    ),
                    &[],
                )
                .await?;
            let fingerprint: (i64, String) = (row.try_get(0)?, row.try_get(1)?);
            if !force && self.fingerprint.as_ref() == Some(&fingerprint) {
                tx.commit().await?;
                return Ok((fingerprint, None, None));
            }
            // The log position in the same snapshot as the rows.
            let position = match &log {
                Some(log) => Some(
                    tx.query_one(
                        &format!("SELECT coalesce(max(seq), 0)::int8 FROM {log}"),
                        &[],
                    )
                    .await?
                    .try_get::<_, i64>(0)?,
                ),
                None => None,
            };
            let rows = tx.query(&select(&table, &conn.columns), &[]).await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>((fingerprint, Some(rows), position))
        };
        let (fingerprint, rows, position) = match read.await {
            Ok(r) => r,
            Err(e) => {
                self.disconnect();
                return Err(db_err(&self.url, e));
            }
        };
        self.fingerprint = Some(fingerprint);
        match rows {
            None => Ok(None),
            Some(rows) => {
                let fetched = to_text(&rows).map_err(|m| self.err(m))?;
                self.position = position;
                Ok(Some(Read::Full(fetched)))
            }
        }
    }

    pub async fn changed(&mut self) -> Wake {
        let Some(conn) = self.conn.as_mut() else {
            return Wake::Lost("not connected".into());
        };
        match conn.notes.recv().await {
            Some(Note::Notified) => {
                self.notified = true;
                Wake::Notified
            }
            Some(Note::Lost(m)) => Wake::Lost(m),
            None => Wake::Lost("connection closed".into()),
        }
    }

    pub fn disconnect(&mut self) {
        self.conn = None;
        self.fingerprint = None;
        self.position = None;
    }
}

/// Polls the connection (it carries the notifications) until it ends.
fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    tx: mpsc::UnboundedSender<Note>,
) -> tokio::task::JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    if tx.send(Note::Notified).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = tx.send(Note::Lost(e.to_string()));
                    return;
                }
                None => {
                    let _ = tx.send(Note::Lost("connection closed by the server".into()));
                    return;
                }
            }
        }
    })
}

/// Server certificates are checked against the system's roots (or the PEM
/// file `SSL_CERT_FILE` names), host name included.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err("sslmode=require but no trusted root certificates were found (set SSL_CERT_FILE to a PEM file)".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// `"name"`; names are checked to be plain identifiers at config load.
fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

fn quote_table(table: &str) -> String {
    match table.split_once('.') {
        Some((schema, name)) => format!("{}.{}", quote(schema), quote(name)),
        None => quote(table),
    }
}

async fn columns(
    client: &impl tokio_postgres::GenericClient,
    table: &str,
) -> Result<Columns, String> {
    let (schema, name) = match table.split_once('.') {
        Some((s, n)) => (Some(s), n),
        None => (None, table),
    };
    let rows = client
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_name = $2 AND table_schema = coalesce($1, current_schema())",
            &[&schema, &name],
        )
        .await
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = rows.iter().filter_map(|r| r.try_get(0).ok()).collect();
    if names.is_empty() {
        return Err(format!(
            "table `{table}` does not exist (or is not visible to this user); `authzd store init` creates it"
        ));
    }
    if !names.iter().any(|n| n == "ptype") {
        return Err(format!(
            "table `{table}` has no `ptype` column: not a Casbin adapter table"
        ));
    }
    let values = (0..)
        .take_while(|i| names.iter().any(|n| *n == format!("v{i}")))
        .count();
    if values == 0 {
        return Err(format!(
            "table `{table}` has no `v0` column: not a Casbin adapter table"
        ));
    }
    Ok(Columns {
        values,
        id: names.iter().any(|n| n == "id"),
    })
}

fn select(table: &str, c: &Columns) -> String {
    let mut cols = String::from(if c.id { "id::text, " } else { "NULL::text, " });
    cols.push_str("ptype::text");
    for i in 0..c.values {
        cols.push_str(&format!(", v{i}::text"));
    }
    // Every replica must see the same order: it is part of the revision, and
    // casbin's first-match effects depend on it.
    // `ORDER BY id` would sort by the output column `id::text` ("10" before "2").
    let order = if c.id {
        format!("{table}.id")
    } else {
        let mut o = String::from("ptype");
        for i in 0..c.values {
            o.push_str(&format!(", v{i}"));
        }
        o
    };
    format!("SELECT {cols} FROM {table} ORDER BY {order}")
}

/// Rows to policy text, as the adapters load them: trailing empty or `NULL`
/// values dropped, empty values in between kept (and refused by the loader).
fn to_text(rows: &[tokio_postgres::Row]) -> Result<Fetched, String> {
    let mut text = String::new();
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        let id: Option<String> = row.try_get(0).map_err(|e| e.to_string())?;
        let at = || match &id {
            Some(id) => format!("row id {id}"),
            None => "a row".to_string(),
        };
        // Borrowed from the row: a million rows are a million fewer allocations.
        let ptype: Option<&str> = row.try_get(1).map_err(|e| e.to_string())?;
        let ptype = ptype.unwrap_or_default();
        if ptype.is_empty()
            || !ptype
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!("{}: `ptype` `{ptype}` is not a policy type", at()));
        }
        let mut values: [&str; 16] = [""; 16];
        let n = (row.len() - 2).min(values.len());
        for (i, v) in values.iter_mut().take(n).enumerate() {
            let got: Option<&str> = row.try_get(i + 2).map_err(|e| e.to_string())?;
            *v = got.unwrap_or_default();
        }
        let used = values[..n]
            .iter()
            .rposition(|v| !v.is_empty())
            .map_or(0, |i| i + 1);
        if row.len() - 2 > values.len() {
            // More value columns than a line takes: the owned path.
            let values = values_of(row, 2)?;
            render(&mut text, ptype, &values).map_err(|m| format!("{}: {m}", at()))?;
        } else {
            render(&mut text, ptype, &values[..used]).map_err(|m| format!("{}: {m}", at()))?;
        }
        ids.push(id);
    }
    Ok(Fetched { text, rows: ids })
}

/// A row's values from column `from` on, as the adapters load them:
/// trailing empty or `NULL` values dropped, empty values in between kept.
fn values_of(row: &tokio_postgres::Row, from: usize) -> Result<Vec<String>, String> {
    let mut values: Vec<String> = Vec::with_capacity(row.len().saturating_sub(from));
    for i in from..row.len() {
        let v: Option<String> = row.try_get(i).map_err(|e| e.to_string())?;
        values.push(v.unwrap_or_default());
    }
    while values.last().is_some_and(String::is_empty) {
        values.pop();
    }
    Ok(values)
}

/// One row as a policy line (`ptype, v0, v1…` and a newline) onto `out`.
pub(crate) fn render(
    out: &mut String,
    ptype: &str,
    values: &[impl AsRef<str>],
) -> Result<(), &'static str> {
    out.push_str(ptype);
    for v in values {
        out.push_str(", ");
        push_field(out, v.as_ref())?;
    }
    out.push('\n');
    Ok(())
}

/// Change-log entries kept: a replica further behind reads the table whole.
const KEEP_LOGGED: i64 = 100_000;

/// The change log for `table` with `values` value columns: a sequence, a
/// table, and statement-level triggers (with transition tables, so a bulk
/// statement writes its entries in one `INSERT … SELECT`) that write one
/// entry per row gone (`D`, with its old values) and per row present (`I`;
/// an `UPDATE` is both, the `D`s first), and one `T` per `TRUNCATE`. The
/// trigger holds a transaction-level advisory lock (one per table) until its
/// transaction ends, so writers take numbers one transaction at a time: log
/// order is commit order, and a reader never sees a later number before an
/// earlier one.
fn change_log_sql(table: &str, values: usize) -> String {
    let log = quote_table(&format!("{table}_changes"));
    let seq = quote_table(&format!("{table}_changes_seq"));
    let function = quote_table(&format!("{table}_changes_log"));
    let t = quote_table(table);
    let cols: String = (0..values)
        .map(|i| format!(", v{i} varchar(100)"))
        .collect();
    let names: String = (0..values).map(|i| format!(", v{i}")).collect();
    let entries = |op: &str, rows: &str| {
        format!(
            "INSERT INTO {log} (seq, op, row_id, ptype{names})
                SELECT nextval('{seq}'), '{op}', id, ptype{names} FROM {rows} ORDER BY id;"
        )
    };
    let (gone, present) = (entries("D", "old_rows"), entries("I", "new_rows"));
    let mut sql = format!(
        "CREATE SEQUENCE IF NOT EXISTS {seq};
        CREATE TABLE IF NOT EXISTS {log} (
            seq bigint PRIMARY KEY,
            op char(1) NOT NULL,
            row_id bigint,
            ptype varchar(100){cols}
        );
        CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $f$
        DECLARE before bigint; last bigint;
        BEGIN
            -- One writer at a time from here to its commit (an advisory
            -- lock: it never waits for autovacuum or a reader).
            PERFORM pg_advisory_xact_lock(hashtext('authzd:' || TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME));
            SELECT coalesce(max(seq), 0) INTO before FROM {log};
            IF TG_OP = 'TRUNCATE' THEN
                INSERT INTO {log} (seq, op) VALUES (nextval('{seq}'), 'T');
            END IF;
            IF TG_OP IN ('DELETE', 'UPDATE') THEN
                {gone}
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                {present}
            END IF;
            -- The entries this statement pushed out of the window, by
            -- index range (never a scan over entries pruned earlier).
            SELECT coalesce(max(seq), 0) INTO last FROM {log};
            IF last > before THEN
                DELETE FROM {log} WHERE seq > before - {KEEP_LOGGED} AND seq <= last - {KEEP_LOGGED};
            END IF;
            RETURN NULL;
        END
        $f$;
        DROP TRIGGER IF EXISTS authzd_log ON {t};
        DROP TRIGGER IF EXISTS authzd_log_truncate ON {t};
        CREATE TRIGGER authzd_log_truncate AFTER TRUNCATE ON {t}
            FOR EACH STATEMENT EXECUTE FUNCTION {function}();"
    );
    for (name, event, tables) in [
        ("authzd_log_insert", "INSERT", "NEW TABLE AS new_rows"),
        (
            "authzd_log_update",
            "UPDATE",
            "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        ),
        ("authzd_log_delete", "DELETE", "OLD TABLE AS old_rows"),
    ] {
        sql.push_str(&format!(
            "
        DROP TRIGGER IF EXISTS {name} ON {t};
        CREATE TRIGGER {name} AFTER {event} ON {t} REFERENCING {tables}
            FOR EACH STATEMENT EXECUTE FUNCTION {function}();"
        ));
    }
    sql
}

/// Log entries read per query.
const PAGE: i64 = 1000;

/// The most log entries applied as one change; more are read whole.
const MAX_LOGGED: i64 = 50_000;

/// What the change log holds after a position.
enum Logged {
    Nothing,
    /// The entries in order, and the last one's number.
    Changes(Vec<RowChange>, i64),
    /// It cannot be followed from there: read the table whole.
    Gap(&'static str),
}

/// The change log's quoted name, when `store init` installed it for `table`
/// with the value columns the table has.
async fn change_log(client: &Client, table: &str, columns: &Columns) -> Option<String> {
    let name = format!("{table}_changes");
    let found = self::columns(client, &name).await.ok()?;
    (found.values >= columns.values).then(|| quote_table(&name))
}

/// The log entries after `position`, in order.
async fn read_log(
    client: &Client,
    log: &str,
    position: i64,
    values: usize,
) -> Result<Logged, tokio_postgres::Error> {
    let mut cols = String::from("seq, op::text, row_id, ptype::text");
    for i in 0..values {
        cols.push_str(&format!(", v{i}::text"));
    }
    // Pages of [`PAGE`]: with a small limit the planner walks the index
    // from `position` even when the table's statistics are stale (a large
    // limit after a bulk import made it scan the whole log, ~14 ms a read).
    let query = format!("SELECT {cols} FROM {log} WHERE seq > $1 ORDER BY seq LIMIT {PAGE}");
    let mut rows = Vec::new();
    let mut from = position;
    loop {
        let page = client.query(&query, &[&from]).await?;
        let full = page.len() as i64 == PAGE;
        if let Some(last) = page.last() {
            from = last.try_get(0)?;
        }
        rows.extend(page);
        if rows.len() as i64 > MAX_LOGGED {
            return Ok(Logged::Gap("too many changes at once"));
        }
        if !full {
            break;
        }
    }
    if rows.is_empty() {
        return Ok(Logged::Nothing);
    }
    let mut out = Vec::with_capacity(rows.len());
    let mut expect = position + 1;
    for row in &rows {
        let seq: i64 = row.try_get(0)?;
        if seq != expect {
            return Ok(Logged::Gap("a gap in the change log"));
        }
        expect += 1;
        let op: String = row.try_get(1)?;
        let id: Option<i64> = row.try_get(2)?;
        let ptype: Option<String> = row.try_get(3)?;
        let (Some(id), Some(ptype), "I" | "D") = (id, ptype, op.as_str()) else {
            return Ok(Logged::Gap("the table was truncated"));
        };
        let Ok(values) = values_of(row, 4) else {
            return Ok(Logged::Gap("an unreadable change-log entry"));
        };
        out.push(RowChange {
            present: op == "I",
            id,
            ptype,
            values,
        });
    }
    Ok(Logged::Changes(out, expect - 1))
}

/// `authzd store …`: one connection for one command.
pub struct Admin {
    client: Client,
    driver: tokio::task::JoinHandle<()>,
    table: String,
    channel: String,
    url: String,
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Admin {
    pub async fn connect(cfg: &PolicyConfig) -> Result<Admin, StoreError> {
        let mut f = Follower::new(cfg)?;
        let (client, driver, _notes) = f.open().await?;
        Ok(Admin {
            client,
            driver,
            table: std::mem::take(&mut f.table),
            channel: std::mem::take(&mut f.channel),
            url: std::mem::take(&mut f.url),
        })
    }

    fn err(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError {
            store: self.url.clone(),
            message: message.to_string(),
        }
    }

    /// Creates the table if it is missing, and (again) the statement-level
    /// trigger that notifies the channel and the change log replicas follow
    /// (`<table>_changes`: a sequence, a table, a row trigger). Safe to run
    /// any number of times.
    pub async fn init(&mut self) -> Result<(), StoreError> {
        let table = quote_table(&self.table);
        let function = quote(&format!("authzd_notify_{}", self.channel));
        let channel = &self.channel;
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                id bigserial PRIMARY KEY,
                ptype varchar(100) NOT NULL,
                v0 varchar(100), v1 varchar(100), v2 varchar(100),
                v3 varchar(100), v4 varchar(100), v5 varchar(100)
            );
            CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $f$
            BEGIN
                PERFORM pg_notify('{channel}', '');
                RETURN NULL;
            END
            $f$;
            DROP TRIGGER IF EXISTS authzd_notify ON {table};
            CREATE TRIGGER authzd_notify
                AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION {function}();"
        );
        let url = self.url.clone();
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| db_err(&url, e))?;
        tx.batch_execute(&sql).await.map_err(|e| db_err(&url, e))?;
        let columns = columns(&tx, &self.table)
            .await
            .map_err(|message| StoreError {
                store: url.clone(),
                message,
            })?;
        if columns.id {
            tx.batch_execute(&change_log_sql(&self.table, columns.values))
                .await
                .map_err(|e| db_err(&url, e))?;
        }
        tx.commit().await.map_err(|e| db_err(&url, e))
    }

    /// Replaces the table's rows with `lines` (fields per line, `ptype`
    /// first) in one transaction. Returns how many rows were written.
    pub async fn import(&mut self, lines: &[Vec<String>]) -> Result<usize, StoreError> {
        let columns = columns(&self.client, &self.table)
            .await
            .map_err(|m| self.err(m))?;
        if let Some((i, l)) = lines
            .iter()
            .enumerate()
            .find(|(_, l)| l.len() - 1 > columns.values)
        {
            return Err(self.err(format!(
                "line {} has {} values; table `{}` has columns v0..v{}",
                i + 1,
                l.len() - 1,
                self.table,
                columns.values - 1
            )));
        }
        let mut arrays: Vec<Vec<Option<String>>> =
            vec![Vec::with_capacity(lines.len()); columns.values + 1];
        for l in lines {
            for (c, array) in arrays.iter_mut().enumerate() {
                array.push(l.get(c).cloned());
            }
        }
        let table = quote_table(&self.table);
        let mut names = String::from("ptype");
        let mut unnest = String::from("$1::text[]");
        for i in 0..columns.values {
            names.push_str(&format!(", v{i}"));
            unnest.push_str(&format!(", ${}::text[]", i + 2));
        }
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = arrays
            .iter()
            .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let url = self.url.clone();
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| db_err(&url, e))?;
        tx.execute(&format!("DELETE FROM {table}"), &[])
            .await
            .map_err(|e| db_err(&url, e))?;
        let n = tx
            .execute(
                &format!("INSERT INTO {table} ({names}) SELECT * FROM unnest({unnest})"),
                &params,
            )
            .await
            .map_err(|e| db_err(&url, e))?;
        tx.commit().await.map_err(|e| db_err(&url, e))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The table as policy CSV, in the order replicas read it.
    pub async fn export(&mut self) -> Result<String, StoreError> {
        let columns = columns(&self.client, &self.table)
            .await
            .map_err(|m| self.err(m))?;
        let rows = self
            .client
            .query(&select(&quote_table(&self.table), &columns), &[])
            .await
            .map_err(|e| db_err(&self.url, e))?;
        to_text(&rows).map(|f| f.text).map_err(|m| self.err(m))
    }
}

/// A database error with the server's own message (`db error` alone says little).
fn db_err(url: &str, e: tokio_postgres::Error) -> StoreError {
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            // "error performing TLS handshake" says little without its cause.
            let mut m = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                m.push_str(&format!(": {s}"));
                source = s.source();
            }
            m
        }
    };
    StoreError {
        store: url.to_string(),
        message,
    }
}
