//! The PostgreSQL schema, as versioned migrations kept in the repository
//! (`migrations/postgres/NNNN_*.sql`). At start every replica applies the
//! ones the database lacks, in one transaction, under one
//! advisory lock, so replicas starting together migrate once.

use deadpool_postgres::Client;

use crate::store::StoreError;

/// Every migration, in order: (version, SQL).
pub const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../../migrations/postgres/0001_init.sql")),
    (2, include_str!("../../../migrations/postgres/0002_covariates.sql")),
    (3, include_str!("../../../migrations/postgres/0003_heartbeats.sql")),
    (4, include_str!("../../../migrations/postgres/0004_event_ids_per_visitor.sql")),
    (5, include_str!("../../../migrations/postgres/0005_capped_values.sql")),
    (6, include_str!("../../../migrations/postgres/0006_notifications.sql")),
    (7, include_str!("../../../migrations/postgres/0007_segments.sql")),
    (8, include_str!("../../../migrations/postgres/0008_capped_floor.sql")),
];

/// The advisory lock migrations run under ("offerlab" in ASCII).
const MIGRATION_LOCK: i64 = 0x6f66_6665_726c_6162;

/// The newest schema version this build knows.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// Brings the schema up to [`latest`]; refuses a database migrated by a
/// newer offerlab.
pub async fn run(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS offerlab_migrations (
             version    integer     PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let found: i32 = tx.query_one("SELECT coalesce(max(version), 0) FROM offerlab_migrations", &[]).await?.get(0);
    if found > latest() {
        return Err(StoreError::NewerSchema { found, known: latest() });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO offerlab_migrations (version) VALUES ($1)", &[version]).await?;
        tracing::info!(version, "applied PostgreSQL migration");
    }
    tx.commit().await?;
    Ok(())
}
