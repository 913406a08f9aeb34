//! Row counts and a checksum per table: taken before a migration and after a recovery, equal when nothing
//! written before the recovery's target was lost.

use connect_core::Result;
use serde::{Deserialize, Serialize};

use crate::postgres::{Postgres, pg_error};

/// One table's row count and content checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableChecksum {
    /// `schema.table`.
    pub table: String,
    /// Its rows.
    pub rows: i64,
    /// The sum of a 64-bit hash of every row's text (`hashtextextended(row::text, 0)`): independent of row
    /// order and of the physical layout, so a restored copy sums the same, while any changed, missing or
    /// added row changes it. Constant memory, one sequential scan.
    pub checksum: String,
}

/// The row count and checksum of every ordinary and partitioned table of `pg`'s database (outside the system
/// schemas), ordered by name.
pub async fn table_checksums(pg: &Postgres) -> Result<Vec<TableChecksum>> {
    let op = "pitr.checksums";
    let client = pg.connect().await?;
    // No statement timeout for the scans: a large table takes longer than a check query may.
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .map_err(|e| pg_error(op, pg.target(), e))?;
    let tables = client
        .query(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
             ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| pg_error(op, pg.target(), e))?;
    let mut out = Vec::new();
    for row in tables {
        // Quoted by the server (quote_ident) above: the name cannot end the identifier.
        let table: String = row.get(0);
        let r = client
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text FROM {table} t"
                ),
                &[],
            )
            .await
            .map_err(|e| pg_error(op, pg.target(), e))?;
        out.push(TableChecksum {
            table,
            rows: r.get(0),
            checksum: r.get(1),
        });
    }
    Ok(out)
}
