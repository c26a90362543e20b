//! `solum-build serve` on PostgreSQL (issue 16), starting with its test bed: a throwaway
//! cluster that starts, answers, survives a fast stop and a SIGKILL with a restart on the
//! same port and data, and is shared by the tests of one binary with a database each. The
//! whole file runs again as the unprivileged user `tester`, where the cluster runs as that
//! user too.

mod support;

use support::postgres::PgCluster;

#[test]
fn a_throwaway_cluster_starts_restarts_and_answers() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    cluster.create_database("restarts");
    assert_eq!(cluster.psql("restarts", "SELECT 1"), "1");
    cluster.psql(
        "restarts",
        "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)",
    );

    cluster.stop_fast();
    assert!(!cluster.is_up(), "the server answers after stop_fast");
    cluster.restart();
    assert_eq!(cluster.psql("restarts", "SELECT 1"), "1");
    assert_eq!(cluster.psql("restarts", "SELECT n FROM kept"), "7");

    let port = cluster.port();
    cluster.kill9();
    assert!(!cluster.is_up(), "the server answers after SIGKILL");
    cluster.restart();
    assert_eq!(cluster.port(), port);
    assert_eq!(cluster.psql("restarts", "SELECT n FROM kept"), "7");
    assert!(
        cluster.url("restarts").starts_with(&format!(
            "postgres://solum@127.0.0.1:{port}/restarts?sslmode=disable"
        )),
        "{}",
        cluster.url("restarts")
    );
}

#[test]
fn the_shared_cluster_keeps_each_tests_database_apart() {
    let Some(cluster) = PgCluster::shared() else {
        return;
    };
    cluster.create_database("first");
    cluster.create_database("second");
    cluster.psql("first", "CREATE TABLE only_in_first (n int)");
    let tables = "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_first'";
    assert_eq!(cluster.psql("first", tables), "1");
    assert_eq!(cluster.psql("second", tables), "0");
    assert!(std::ptr::eq(cluster, PgCluster::shared().unwrap()));
}

#[test]
fn text_with_nul_is_stored_and_a_workflow_still_reaches_its_end() {
    use solum_build::api::records::{now, AppRecord, NewWorkflow, Records};
    use solum_build::report::State;
    let Some(cluster) = PgCluster::shared() else {
        return;
    };
    cluster.create_database("nul_text");
    let records = Records::open_url(&cluster.url("nul_text")).unwrap();
    records
        .create_app(&AppRecord {
            name: "one".into(),
            app_file: "version: 1".into(),
            managed_source: false,
            trigger_id: "t".into(),
            trigger_secret: "s".into(),
            created_at: now(),
            updated_at: now(),
            deleted_at: None,
        })
        .unwrap();
    // A webhook's revision and a build failure's detail are input: PostgreSQL's text
    // refuses NUL, which must neither lose the workflow nor its final state.
    let id = records
        .create_workflow(&NewWorkflow {
            app: "one".into(),
            origin: "webhook".into(),
            revision: Some("main\0x".into()),
            ..NewWorkflow::default()
        })
        .unwrap();
    records.claim_next("w1", 60_000).unwrap().unwrap();
    assert!(records
        .transition(id, State::BuildFailed, "step \0 failed", Some("w1"))
        .unwrap());
    let record = records.workflow(id).unwrap().unwrap();
    assert_eq!(record.state, State::BuildFailed);
    assert_eq!(record.revision.as_deref(), Some("main\u{fffd}x"));
    assert_eq!(record.reason.as_deref(), Some("step \u{fffd} failed"));
}

#[test]
fn run_again_as_tester() {
    support::rerun_as_tester();
}
