//! The no-op integration: its manifest, and tasks that do nothing.

use serde_json::{Map, Value};
use tributary_sdk::{ErrorClass, Task};
use tributary_testkit::driver::Driver;
use tributary_testkit::noop::{NoopTask, registration};

#[test]
fn manifest_is_valid() {
    let noop = registration().expect("noop manifest").manifest;
    assert_eq!(noop.domain, "noop");
    assert_eq!(noop.task_types, ["start", "noop"]);
}

#[tokio::test]
async fn noop_tasks_do_nothing() {
    let mut driver = Driver::new(
        registration().expect("manifest"),
        Default::default(),
        Map::new(),
    )
    .expect("driver");
    driver.validate().await.expect("always valid");
    for task in [
        Task::start(),
        NoopTask::task(None).expect("task"),
        NoopTask::task(Some("x".into())).expect("task"),
    ] {
        let result = driver.run(&task).await.expect("runs");
        assert!(result.outputs.is_empty() && result.tasks.is_empty());
        assert!(result.sync_state.is_none() && result.credentials.is_none());
    }
    assert_eq!(
        NoopTask::task(Some("x".into()))
            .expect("task")
            .item_id
            .as_deref(),
        Some("x")
    );
    let err = driver
        .run(&Task::new("fetchItem", Value::Null))
        .await
        .expect_err("unknown");
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(err.message().contains("fetchItem"));
}
