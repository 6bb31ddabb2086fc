//! The schema cache: the tables of the exposed schema, their columns, keys and foreign
//! keys, read from Postgres's catalogs. Every identifier a request names is checked
//! against it before it reaches SQL, and relationships for embedding come from it.
//!
//! Read on first use and again on `NOTIFY pgrst, 'reload schema'` (PostgREST's own
//! channel and payload), so a migration does not need a restart; see [`listen`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

/// The schema the data API serves, as PostgREST's `db-schemas` default on Supabase.
pub const SCHEMA: &str = "public";

/// The channel and payload PostgREST listens for.
const CHANNEL: &str = "pgrst";
const RELOAD: &str = "reload schema";

/// One column.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// The type as SQL spells it (`uuid`, `task_status`, `text[]`), used in casts.
    pub sql_type: String,
    pub is_array: bool,
}

/// Columns of one table, in a key's order.
#[derive(Debug, Clone)]
pub struct KeyColumns {
    pub table: String,
    pub columns: Vec<String>,
}

/// A foreign key: `from`'s columns reference `to`'s.
#[derive(Debug, Clone)]
pub struct ForeignKey {
    pub name: String,
    pub from: KeyColumns,
    pub to: KeyColumns,
}

impl ForeignKey {
    /// The one referencing column, when the key has exactly one.
    fn single_column(&self) -> Option<&str> {
        match self.from.columns.as_slice() {
            [column] => Some(column),
            _ => None,
        }
    }
}

/// A row of the constraints query.
#[derive(sqlx::FromRow)]
struct ConstraintRow {
    kind: String,
    name: String,
    table: String,
    referenced_table: String,
    columns: Vec<String>,
    referenced: Vec<String>,
}

/// One table or view.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub name: String,
    /// In declaration order.
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// How an embedded table relates to the table it is embedded in.
#[derive(Debug, Clone)]
pub enum Relationship {
    /// The parent holds the foreign key: at most one row (an object or null).
    ManyToOne(ForeignKey),
    /// The embedded table holds the foreign key: any number of rows (an array).
    OneToMany(ForeignKey),
}

/// Why an embedding could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelationshipError {
    NotFound,
    /// More than one foreign key fits; the names of the candidates.
    Ambiguous(Vec<String>),
}

/// The cache itself: immutable once read.
#[derive(Debug, Default)]
pub struct Schema {
    tables: BTreeMap<String, Table>,
    foreign_keys: Vec<ForeignKey>,
}

impl Schema {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// The table, or PostgREST's PGRST205 answer.
    pub fn table_or_error(&self, name: &str) -> Result<&Table, super::RestError> {
        self.table(name)
            .ok_or_else(|| super::RestError::unknown_table(name))
    }

    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    /// The relationship `parent → target` for an embedding named `target` (a table, or
    /// a foreign-key column of the parent), optionally disambiguated by `hint` (a
    /// constraint or column name), as PostgREST resolves it.
    pub fn relationship(
        &self,
        parent: &str,
        target: &str,
        hint: Option<&str>,
    ) -> Result<(String, Relationship), RelationshipError> {
        let fits_hint =
            |fk: &ForeignKey| hint.is_none_or(|h| fk.name == h || fk.single_column() == Some(h));
        let mut found: Vec<(String, Relationship)> = Vec::new();
        for fk in &self.foreign_keys {
            // The parent points at the target: by table name or by the column's name.
            let by_column = fk.single_column() == Some(target);
            if fk.from.table == parent && (fk.to.table == target || by_column) && fits_hint(fk) {
                found.push((fk.to.table.clone(), Relationship::ManyToOne(fk.clone())));
            }
            if fk.to.table == parent && fk.from.table == target && fits_hint(fk) {
                found.push((fk.from.table.clone(), Relationship::OneToMany(fk.clone())));
            }
        }
        match found.len() {
            0 => Err(RelationshipError::NotFound),
            1 => Ok(found.remove(0)),
            _ => Err(RelationshipError::Ambiguous(
                found
                    .iter()
                    .map(|(_, r)| match r {
                        Relationship::ManyToOne(fk) | Relationship::OneToMany(fk) => {
                            fk.name.clone()
                        }
                    })
                    .collect(),
            )),
        }
    }

    /// Reads the exposed schema's tables, columns and keys.
    pub async fn load(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let columns: Vec<(String, String, String, bool)> = sqlx::query_as(
            "select c.relname::text, a.attname::text, a.atttypid::regtype::text,
                    t.typcategory = 'A'
             from pg_class c
             join pg_namespace n on n.oid = c.relnamespace
             join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
             join pg_type t on t.oid = a.atttypid
             where n.nspname = $1 and c.relkind in ('r', 'v', 'm', 'p', 'f')
             order by c.relname, a.attnum",
        )
        .bind(SCHEMA)
        .fetch_all(pool)
        .await?;
        let mut tables: BTreeMap<String, Table> = BTreeMap::new();
        for (table, name, sql_type, is_array) in columns {
            let entry = tables.entry(table.clone()).or_insert_with(|| Table {
                name: table,
                ..Table::default()
            });
            entry.columns.push(Column {
                name,
                sql_type,
                is_array,
            });
        }

        let keys: Vec<ConstraintRow> = sqlx::query_as(
            "select con.contype::text as kind, con.conname::text as name, cl.relname::text as table,
                        coalesce(fcl.relname::text, '') as referenced_table,
                        array(select a.attname::text
                              from unnest(con.conkey) with ordinality k(num, ord)
                              join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.num
                              order by k.ord) as columns,
                        array(select a.attname::text
                              from unnest(coalesce(con.confkey, '{}')) with ordinality k(num, ord)
                              join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.num
                              order by k.ord) as referenced
                 from pg_constraint con
                 join pg_class cl on cl.oid = con.conrelid
                 join pg_namespace n on n.oid = cl.relnamespace
                 left join pg_class fcl on fcl.oid = con.confrelid
                 left join pg_namespace fn on fn.oid = fcl.relnamespace
                 where n.nspname = $1 and con.contype in ('p', 'f')
                   and (con.contype = 'p' or fn.nspname = $1)
                 order by con.conname",
        )
        .bind(SCHEMA)
        .fetch_all(pool)
        .await?;
        let mut foreign_keys = Vec::new();
        for key in keys {
            if key.kind == "p" {
                if let Some(t) = tables.get_mut(&key.table) {
                    t.primary_key = key.columns;
                }
            } else {
                foreign_keys.push(ForeignKey {
                    name: key.name,
                    from: KeyColumns {
                        table: key.table,
                        columns: key.columns,
                    },
                    to: KeyColumns {
                        table: key.referenced_table,
                        columns: key.referenced,
                    },
                });
            }
        }
        Ok(Self {
            tables,
            foreign_keys,
        })
    }
}

/// The schema in force, shared by every request; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SchemaCache {
    current: Arc<ArcSwapOption<Schema>>,
    /// One reader at a time, so a burst of first requests reads the catalogs once.
    loading: Arc<tokio::sync::Mutex<()>>,
}

impl SchemaCache {
    /// The cached schema, read now when there is none yet (first use, or Postgres was
    /// away when it was last needed).
    pub async fn get(&self, pool: &PgPool) -> Result<Arc<Schema>, sqlx::Error> {
        if let Some(schema) = self.current.load_full() {
            return Ok(schema);
        }
        let _reading = self.loading.lock().await;
        if let Some(schema) = self.current.load_full() {
            return Ok(schema);
        }
        self.reload(pool).await
    }

    /// Reads the catalogs again and swaps the result in; requests in flight keep the
    /// schema they started with.
    pub async fn reload(&self, pool: &PgPool) -> Result<Arc<Schema>, sqlx::Error> {
        let schema = Arc::new(Schema::load(pool).await?);
        tracing::info!(tables = schema.tables.len(), "data API schema cache loaded");
        self.current.store(Some(Arc::clone(&schema)));
        Ok(schema)
    }

    /// Forgets the schema, so the next request reads it.
    fn invalidate(&self) {
        self.current.store(None);
    }
}

/// Listens on `pgrst` and reloads the cache on `reload schema`, for as long as the task
/// lives. After a lost connection (notifications may have been missed meanwhile) the
/// cache is dropped, so the next request reads it again.
pub async fn listen(pool: PgPool, cache: SchemaCache) {
    loop {
        if let Err(error) = listen_once(&pool, &cache).await {
            tracing::debug!(%error, "schema cache listener failed; retrying");
        }
        cache.invalidate();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once(pool: &PgPool, cache: &SchemaCache) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    // Changes made before LISTEN took effect were not heard.
    cache.invalidate();
    loop {
        // `None`: the connection was lost (and is re-made by the next call).
        let Some(notification) = listener.try_recv().await? else {
            tracing::warn!(
                "schema cache listener lost its connection; the cache is read again on next use"
            );
            cache.invalidate();
            continue;
        };
        let payload = notification.payload().trim();
        let reload = payload.is_empty() || payload == RELOAD;
        if reload && let Err(error) = cache.reload(pool).await {
            tracing::warn!(%error, "schema cache reload failed; read again on next use");
            cache.invalidate();
        }
    }
}
