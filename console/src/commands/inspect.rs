//! `berth inspect`: the container's summary, the spec it was made from, and Docker's own
//! document, as one pretty JSON object.

use super::print;
use crate::errors::status_report;
use crate::output::{inspect_json, to_json};
use crate::session::Session;
use berth_proto::v1 as pb;
use color_eyre::eyre::Result;

pub async fn execute(session: &mut Session, container: &str) -> Result<()> {
    let detail = session
        .client
        .inspect(pb::InspectRequest {
            container: container.to_owned(),
        })
        .await
        .map_err(|s| status_report(s, &session.address))?
        .into_inner();
    print(&to_json(&inspect_json(&detail, chrono::Utc::now()))?)
}
