//! The Casbin adapter table in PostgreSQL (`ptype, v0..v5`, the schema the
//! Go, Node, Python and Rust adapters write), followed with LISTEN/NOTIFY.
//!
//! A read is one `REPEATABLE READ` transaction: a cheap fingerprint of the
//! table (row count and the sum of the rows' `xmin`, which every insert,
//! update and delete moves) and, when it differs from the last read or the
//! read is forced, every row ordered by `id`.

use std::{str::FromStr, sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, config::SslMode};

use super::{Fetched, StoreError, Wake, push_field, redact};
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
}

struct Conn {
    client: Client,
    notes: mpsc::UnboundedReceiver<Note>,
    columns: Columns,
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
        self.conn = Some(Conn {
            client,
            notes,
            columns,
            driver,
        });
        self.fingerprint = None;
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

    pub async fn sync(&mut self, force: bool) -> Result<Option<Fetched>, StoreError> {
        if self.conn.is_none() {
            self.connect().await?;
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(self.err("not connected"));
        };
        // Notifications nobody waited for (Lambda reads only on invocation):
        // any of them means the cheap check can be skipped.
        let mut force = force;
        while let Ok(note) = conn.notes.try_recv() {
            match note {
                Note::Notified => force = true,
                Note::Lost(m) => {
                    self.disconnect();
                    return Err(self.err(format!("connection lost: {m}")));
                }
            }
        }
        let table = quote_table(&self.table);
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
                return Ok((fingerprint, None));
            }
            let rows = tx.query(&select(&table, &conn.columns), &[]).await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>((fingerprint, Some(rows)))
        };
        let (fingerprint, rows) = match read.await {
            Ok(r) => r,
            Err(e) => {
                self.disconnect();
                return Err(db_err(&self.url, e));
            }
        };
        self.fingerprint = Some(fingerprint);
        match rows {
            None => Ok(None),
            Some(rows) => to_text(&rows).map(Some).map_err(|m| self.err(m)),
        }
    }

    pub async fn changed(&mut self) -> Wake {
        let Some(conn) = self.conn.as_mut() else {
            return Wake::Lost("not connected".into());
        };
        match conn.notes.recv().await {
            Some(Note::Notified) => Wake::Notified,
            Some(Note::Lost(m)) => Wake::Lost(m),
            None => Wake::Lost("connection closed".into()),
        }
    }

    pub fn disconnect(&mut self) {
        self.conn = None;
        self.fingerprint = None;
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

async fn columns(client: &Client, table: &str) -> Result<Columns, String> {
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
    let order = if c.id {
        "id".to_string()
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
        let ptype: Option<String> = row.try_get(1).map_err(|e| e.to_string())?;
        let ptype = ptype.unwrap_or_default();
        if ptype.is_empty()
            || !ptype
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!("{}: `ptype` `{ptype}` is not a policy type", at()));
        }
        let mut values: Vec<String> = Vec::with_capacity(row.len() - 2);
        for i in 2..row.len() {
            let v: Option<String> = row.try_get(i).map_err(|e| e.to_string())?;
            values.push(v.unwrap_or_default());
        }
        while values.last().is_some_and(String::is_empty) {
            values.pop();
        }
        text.push_str(&ptype);
        for v in &values {
            text.push_str(", ");
            push_field(&mut text, v).map_err(|m| format!("{}: {m}", at()))?;
        }
        text.push('\n');
        ids.push(id);
    }
    Ok(Fetched { text, rows: ids })
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
    /// trigger that notifies the channel. Safe to run any number of times.
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
