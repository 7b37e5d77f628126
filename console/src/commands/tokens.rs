//! `berth secret new|rotate|ls|install|use|remove` and `berth token create|ls|revoke`: the
//! cluster secret and its rotation, and console tokens with a scope, kept by every agent.

use super::print;
use crate::cli::{OutputFormat, ScopeArg, SecretCommand, TokenCommand};
use crate::errors::status_report;
use crate::output::{Table, rfc3339_ms, to_json};
use crate::session::Session;
use berth_proto::v1 as pb;
use berth_shared::trust::scope_word;
use color_eyre::Section;
use color_eyre::eyre::{Result, WrapErr, eyre};
use serde::Serialize;

/// A new secret on stdout (alone on its line, so `berth secret new > token` keeps just it),
/// what to do with it on stderr.
pub fn new_secret(output: OutputFormat) -> Result<()> {
    let secret = berth_shared::trust::new_secret().map_err(|e| eyre!("{e}"))?;
    if output == OutputFormat::Json {
        return print(&to_json(&serde_json::json!({ "secret": secret }))?);
    }
    eprintln!(
        "A new cluster secret. Start every agent of the cluster with it (--token-file FILE or \
         BERTH_TOKEN); it is also the cluster's admin token: keep it like a root password, and \
         give people `berth token create` tokens instead."
    );
    print(&format!("{secret}\n"))
}

#[derive(Serialize)]
struct TokenJson {
    id: String,
    name: String,
    scope: &'static str,
    state: &'static str,
    created: Option<String>,
    expires: Option<String>,
    created_by: String,
}

fn state(t: &pb::TokenInfo, now_ms: i64) -> &'static str {
    if t.revoked {
        "revoked"
    } else if t.expires_unix_ms > 0 && now_ms >= t.expires_unix_ms {
        "expired"
    } else {
        "active"
    }
}

fn token_json(t: &pb::TokenInfo, now_ms: i64) -> TokenJson {
    TokenJson {
        id: t.id.clone(),
        name: t.name.clone(),
        scope: scope_word(t.scope),
        state: state(t, now_ms),
        created: rfc3339_ms(t.created_unix_ms),
        expires: (t.expires_unix_ms > 0)
            .then(|| rfc3339_ms(t.expires_unix_ms))
            .flatten(),
        created_by: t.created_by.clone(),
    }
}

pub async fn execute(session: &mut Session, output: OutputFormat, c: TokenCommand) -> Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    match c {
        TokenCommand::Create(a) => {
            let scope = match a.scope {
                ScopeArg::Read => pb::Scope::Read,
                ScopeArg::Operate => pb::Scope::Operate,
                ScopeArg::Admin => pb::Scope::Admin,
            };
            let r = session
                .client
                .create_token(pb::CreateTokenRequest {
                    scope: scope as i32,
                    ttl_seconds: a.ttl.map_or(0, |d| d.as_secs()),
                    name: a.name,
                })
                .await
                .map_err(|s| status_report(s, &session.address))?
                .into_inner();
            let info = r.info.unwrap_or_default();
            if output == OutputFormat::Json {
                let mut v = serde_json::to_value(token_json(&info, now))?;
                v["token"] = serde_json::Value::String(r.token);
                return print(&to_json(&v)?);
            }
            let expires = if info.expires_unix_ms > 0 {
                rfc3339_ms(info.expires_unix_ms).unwrap_or_default()
            } else {
                "never (until revoked)".into()
            };
            eprintln!(
                "token {} with scope {}, expires {expires}. It is shown only this once; it \
                 also pins this cluster's CA, so a console needs nothing else.",
                info.id,
                scope_word(info.scope)
            );
            print(&format!("{}\n", r.token))
        }
        TokenCommand::Ls => {
            let mut tokens = session
                .client
                .list_tokens(pb::ListTokensRequest {})
                .await
                .map_err(|s| status_report(s, &session.address))?
                .into_inner()
                .tokens;
            tokens.sort_by_key(|t| t.created_unix_ms);
            if output == OutputFormat::Json {
                let rows: Vec<TokenJson> = tokens.iter().map(|t| token_json(t, now)).collect();
                return print(&to_json(&rows)?);
            }
            let mut table =
                Table::new(&["ID", "NAME", "SCOPE", "STATE", "CREATED", "EXPIRES", "BY"]);
            for t in &tokens {
                let j = token_json(t, now);
                table.row(vec![
                    j.id,
                    j.name,
                    j.scope.into(),
                    j.state.into(),
                    j.created.unwrap_or_default(),
                    j.expires.unwrap_or_else(|| "never".into()),
                    j.created_by,
                ]);
            }
            print(&table.render())
        }
        TokenCommand::Revoke { id } => {
            let r = session
                .client
                .revoke_token(pb::RevokeTokenRequest { id })
                .await
                .map_err(|s| status_report(s, &session.address))?
                .into_inner();
            let info = r.info.unwrap_or_default();
            if output == OutputFormat::Json {
                return print(&to_json(&token_json(&info, now))?);
            }
            print(&format!(
                "revoked token {}; every agent refuses it within seconds\n",
                info.id
            ))
        }
    }
}

/// A secret from a file (`-`: stdin), trimmed and checked as an agent would.
fn read_secret(path: &std::path::Path) -> Result<String> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).wrap_err("cannot read the secret from stdin")?
    } else {
        std::fs::read_to_string(path)
            .wrap_err_with(|| format!("cannot read the secret file {}", path.display()))?
    };
    let secret = text.trim().to_owned();
    berth_shared::token::check_agent_token(&secret)
        .map_err(|e| eyre!("the secret in {}: {e}", path.display()))?;
    Ok(secret)
}

/// One keyring call on every agent; an error naming the nodes that did not do it.
async fn keyring(
    session: &mut Session,
    action: pb::KeyringAction,
    secret: &str,
) -> Result<Vec<pb::NodeKeyring>> {
    let list = action == pb::KeyringAction::List;
    let nodes = session
        .client
        .keyring(pb::KeyringRequest {
            action: action as i32,
            secret: secret.to_owned(),
        })
        .await
        .map_err(|s| status_report(s, &session.address))?
        .into_inner()
        .nodes;
    let failed: Vec<String> = nodes
        .iter()
        .filter(|n| !n.error.is_empty())
        .map(|n| format!("{}: {}", n.node, n.error))
        .collect();
    if !failed.is_empty() && !list {
        return Err(eyre!("not done on every node:\n  {}", failed.join("\n  "))).suggestion(
            "fix those nodes (or wait until they are back) and run the same command again: \
             every step may be repeated",
        );
    }
    Ok(nodes)
}

fn keyring_table(nodes: &[pb::NodeKeyring]) -> String {
    let mut table = Table::new(&["NODE", "IN USE", "ALSO ACCEPTED", "ERROR"]);
    for n in nodes {
        table.row(vec![
            n.node.clone(),
            n.keys.first().cloned().unwrap_or_default(),
            n.keys.get(1..).unwrap_or_default().join(" "),
            n.error.clone(),
        ]);
    }
    table.render()
}

pub async fn secret(
    session: &mut Session,
    output: OutputFormat,
    c: SecretCommand,
    token: Option<&str>,
) -> Result<()> {
    let (action, file) = match c {
        SecretCommand::New => return new_secret(output),
        SecretCommand::Ls => (pb::KeyringAction::List, None),
        SecretCommand::Install { secret_file } => (pb::KeyringAction::Install, Some(secret_file)),
        SecretCommand::Use { secret_file } => (pb::KeyringAction::Use, Some(secret_file)),
        SecretCommand::Remove { secret_file } => (pb::KeyringAction::Remove, Some(secret_file)),
        SecretCommand::Rotate { secret_file } => {
            let new = read_secret(&secret_file)?;
            let old = match token.map(berth_shared::trust::Credential::parse) {
                Some(Ok(berth_shared::trust::Credential::Secret(s))) => s,
                _ => {
                    return Err(eyre!(
                        "a rotation removes the current secret, so it needs it"
                    ))
                    .suggestion(
                        "give the current cluster secret as --token-file (or BERTH_TOKEN)",
                    );
                }
            };
            if new == old {
                return Err(eyre!("the new secret is the one in use"))
                    .suggestion("make a new one with `berth secret new > FILE`");
            }
            // One connection throughout: it was verified against the old CA, and stays open
            // while the agents move to the new one.
            let n = keyring(session, pb::KeyringAction::Install, &new)
                .await?
                .len();
            eprintln!("1/3 installed the new secret on {n} nodes");
            let n = keyring(session, pb::KeyringAction::Use, &new).await?.len();
            eprintln!("2/3 every node uses the new secret ({n} nodes)");
            let nodes = keyring(session, pb::KeyringAction::Remove, &old).await?;
            eprintln!(
                "3/3 removed the old secret from {} nodes: it no longer gets in anywhere. Give \
                 the new secret to the agents' token files, and mint new scoped tokens (the old \
                 ones pinned the old CA).",
                nodes.len()
            );
            return print(&keyring_table(&nodes));
        }
    };
    let secret = match file {
        Some(f) => read_secret(&f)?,
        None => String::new(),
    };
    let nodes = keyring(session, action, &secret).await?;
    if output == OutputFormat::Json {
        let rows: Vec<serde_json::Value> = nodes
            .iter()
            .map(|n| serde_json::json!({ "node": n.node, "keys": n.keys }))
            .collect();
        return print(&to_json(&rows)?);
    }
    print(&keyring_table(&nodes))
}
