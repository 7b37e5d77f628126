//! Request ids on `Run`: a retry never makes a second copy, and a run cut off by `kill -9`
//! between create and start leaves nothing behind.

use crate::cluster::Cluster;
use crate::support::*;
use berth_proto::v1 as pb;
use berth_testkit::{
    AgentOptions, AgentProcess, ContainerGuard, DockerProxy, Result, unique, wait_for,
    workload_image,
};
use tonic::Code;

/// The containers on the engine made by a run with request id `id`, whoever owns them.
async fn made_by(id: &str) -> Result<Vec<String>> {
    berth_testkit::list_labelled(&format!("{}={id}", berth_shared::labels::REQUEST)).await
}

fn with_id(spec: pb::ContainerSpec, id: &str) -> pb::RunRequest {
    pb::RunRequest {
        spec: Some(spec),
        request_id: id.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_retried_run_makes_one_container() -> Result<()> {
    let image = workload_image().await?;
    let agent = AgentProcess::spawn(AgentOptions::default()).await?;
    let _guard = ContainerGuard::node(&agent.name);
    let mut client = agent.client().await?;

    // No name, so nothing but the request id can tell the cluster it has seen this run.
    let id = unique("req");
    let first = run_ok(&mut client, with_id(spec(&image, "", &[]), &id)).await;
    assert_eq!(first.request_id, id);
    let (events, again) = run(&mut client, with_id(spec(&image, "", &[]), &id)).await;
    let again = again.map_err(|s| berth_testkit::error(format!("retry failed: {s:?}")))?;
    assert_eq!(again.id, first.id, "the retry made another container");
    let said = format!("{events:?}");
    assert!(said.contains("earlier try"), "{said}");
    assert_eq!(made_by(&id).await?.len(), 1);

    // Two tries at once: one waits for the other and answers with its container.
    let twin = unique("req");
    let mut other = client.clone();
    let (a, b) = tokio::join!(
        run_ok(&mut client, with_id(spec(&image, "", &[]), &twin)),
        run_ok(&mut other, with_id(spec(&image, "", &[]), &twin)),
    );
    assert_eq!(
        a.id, b.id,
        "two concurrent tries of one id made two containers"
    );
    assert_eq!(made_by(&twin).await?.len(), 1);

    // A different id is a different run.
    let fresh = run_ok(&mut client, with_id(spec(&image, "", &[]), &unique("req"))).await;
    assert_ne!(fresh.id, first.id);

    // A bad id is refused, names the field, and makes nothing.
    let before = containers(&mut client).await.len();
    for bad in ["a b", "x/y", &"x".repeat(65)] {
        let err = run(&mut client, with_id(spec(&image, "", &[]), bad))
            .await
            .1
            .expect_err("bad request id accepted");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("request_id"), "{err:?}");
    }
    assert_eq!(containers(&mut client).await.len(), before);
    Ok(())
}

/// The first try went to another node; retries through the entry agent, through that node and
/// through a third agent (forwarded at once, or on its own once gossip told it) all find it.
#[tokio::test]
async fn a_retry_through_any_agent_finds_the_first_copy() -> Result<()> {
    let image = workload_image().await?;
    let cluster = Cluster::start(3, |_| Vec::new()).await?;
    cluster.converge().await?;
    let [a, b, c] = &cluster.agents[..] else {
        unreachable!("three agents")
    };
    let mut via_a = a.client().await?;
    let mut via_b = b.client().await?;
    let mut via_c = c.client().await?;

    let id = unique("req");
    let mut first = with_id(spec(&image, "", &[]), &id);
    first.node = b.name.clone();
    let made = run_ok(&mut via_a, first).await;
    assert_eq!(made.node, b.name);
    // At once, before gossip can have told C: C forwards a retry pinned to B, and B answers
    // from its own view.
    let mut pinned = with_id(spec(&image, "", &[]), &id);
    pinned.node = b.name.clone();
    let again = run_ok(&mut via_c, pinned).await;
    assert_eq!(
        again.id, made.id,
        "a retry forwarded to b made another container"
    );
    // A remembers the run; B has it.
    for (via, client) in [("a", &mut via_a), ("b", &mut via_b)] {
        let again = run_ok(client, with_id(spec(&image, "", &[]), &id)).await;
        assert_eq!(
            again.id, made.id,
            "a retry through {via} made another container"
        );
    }
    // Unpinned through C: once gossip shows C the container, C answers with it.
    wait_for("C to see the container", WAIT, || {
        let mut via_c = via_c.clone();
        let want = made.id.clone();
        async move {
            containers(&mut via_c)
                .await
                .into_iter()
                .find(|c| c.id == want)
        }
    })
    .await?;
    let again = run_ok(&mut via_c, with_id(spec(&image, "", &[]), &id)).await;
    assert_eq!(
        again.id, made.id,
        "a retry through c made another container"
    );
    assert_eq!(made_by(&id).await?.len(), 1);
    Ok(())
}

/// `kill -9` while the agent waits between Docker's create and start (the proxy holds the
/// start): after the restart the half-made container is gone, and a retry of the same request
/// id makes exactly one that runs.
#[tokio::test]
async fn a_run_cut_off_between_create_and_start_is_undone() -> Result<()> {
    let image = workload_image().await?;
    let dir = tempfile::Builder::new().prefix("bp").tempdir_in("/tmp")?;
    let proxy = DockerProxy::start(dir.path()).await?;
    let mut agent = AgentProcess::spawn(AgentOptions {
        docker_host: Some(proxy.docker_host()),
        ..Default::default()
    })
    .await?;
    let _guard = ContainerGuard::node(&agent.name);
    let mut client = agent.client().await?;
    wait_for("the agent's runtime", WAIT, || {
        let mut client = client.clone();
        async move { runtime(&mut client).await.filter(|r| r.available) }
    })
    .await?;

    let id = unique("req");
    proxy.hold("/start ");
    let mut first = client.clone();
    let first_image = image.clone();
    let first_id = id.clone();
    let cut = tokio::spawn(async move {
        run(&mut first, with_id(spec(&first_image, "", &[]), &first_id)).await
    });
    wait_for("the start to be held", WAIT, || async {
        (proxy.held() > 0).then_some(())
    })
    .await?;
    let half_made = made_by(&id).await?;
    assert_eq!(half_made.len(), 1, "the create did not go through");

    agent.kill9();
    let (_, answer) = cut.await?;
    assert!(answer.is_err(), "the killed agent answered: {answer:?}");
    // The held start is never forwarded: the agent that sent it is dead.
    proxy.unhold();
    agent.restart().await?;
    wait_for("the half-made container to be removed", WAIT, || {
        let id = id.clone();
        async move { made_by(&id).await.ok().filter(|v| v.is_empty()) }
    })
    .await?;
    assert!(
        agent
            .log()
            .contains("removed a container a previous run created but never started"),
        "{}",
        agent.log()
    );

    client = agent.client().await?;
    let made = wait_for("the retry to run", WAIT, || {
        let mut client = client.clone();
        let (image, id) = (image.clone(), id.clone());
        async move {
            run(&mut client, with_id(spec(&image, "", &[]), &id))
                .await
                .1
                .ok()
        }
    })
    .await?;
    assert_eq!(made.state, "running");
    assert_eq!(made_by(&id).await?, vec![made.id]);
    Ok(())
}
