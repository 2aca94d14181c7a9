//! The admin API end to end: the router on `127.0.0.1:0` over a real store
//! (SQLite in a temporary directory, and the PostgreSQL named by
//! `PORTICO_TEST_POSTGRES`), with a node stand-in that compiles every
//! change with `portico_config` and records what it was asked to publish.

mod cases;
mod harness;
#[allow(dead_code)]
#[path = "../../../portico-store/tests/store/support.rs"]
mod support;

/// Instantiates every case once per backend.
macro_rules! both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = crate::support::TestDb::sqlite().await;
                    let admin = crate::harness::Admin::start(db.store.clone()).await;
                    crate::cases::$case(&admin).await;
                    admin.stop().await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = crate::support::TestDb::postgres().await;
                    let admin = crate::harness::Admin::start(db.store.clone()).await;
                    crate::cases::$case(&admin).await;
                    admin.stop().await;
                    db.finish().await;
                }
            )*
        }
    };
}

both!(
    entities_round_trip_with_etags,
    preconditions_refuse_stale_changes,
    invalid_change_is_refused_whole,
    in_use_entities_are_conflicts,
    listings_paginate_with_link_headers,
    tokens_authenticate,
    consumer_changing_another_developers_app_is_refused_and_audited,
    roles_follow_the_table,
    keys_issue_rotate_revoke,
    subscriptions_follow_product_approval,
    users_and_tokens,
    changes_are_published,
    bootstrap_token,
    openapi_document_is_open,
    every_documented_operation_is_routed,
    apply_and_export,
);
