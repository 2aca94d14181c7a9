//! The store's test suite, written once and run against both databases:
//! SQLite in a temporary directory, and the real PostgreSQL named by
//! `PORTICO_TEST_POSTGRES` (each test in a database of its own, dropped at
//! the end). A PostgreSQL that cannot be reached fails the test.

mod cases;
mod support;

/// Instantiates every case once per backend.
macro_rules! both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = crate::support::TestDb::sqlite().await;
                    crate::cases::$case(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = crate::support::TestDb::postgres().await;
                    crate::cases::$case(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

both!(
    migrations_are_idempotent_on_reopen,
    entities_round_trip,
    audit_commits_with_the_change,
    failed_change_leaves_nothing,
    refused_attempt_is_audited,
    revision_conflicts_are_distinct,
    lists_paginate_in_a_stable_order,
    api_specs_keep_a_history,
    subscriptions_follow_product_approval,
    keys_are_shown_once_and_stored_hashed,
    key_expiry_rotation_and_revocation,
    admin_tokens_verify_revoke_expire,
    version_counter_bumps_on_changes,
    export_compiles_into_a_snapshot,
    in_use_entities_stay,
    apply_writes_only_what_differs,
    apply_compares_specs_as_documents,
    apply_prunes_all_or_only_its_own,
    apply_is_all_or_nothing,
    apply_of_an_export_changes_nothing,
);

#[tokio::test]
async fn postgres_notifies_a_new_version_after_commit() {
    let db = support::TestDb::postgres().await;
    cases::notify_after_commit(&db).await;
    db.finish().await;
}

#[tokio::test]
async fn sqlite_has_no_listener() {
    let db = support::TestDb::sqlite().await;
    assert!(matches!(
        db.store.listen().await,
        Err(portico_store::Error::Unsupported(_))
    ));
    db.finish().await;
}
