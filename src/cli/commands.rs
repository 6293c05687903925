//! The registry commands: `client …`, `user …` and `keys …`.

use std::path::PathBuf;

use output::{print_client, print_json, print_user, read_password};
use serde_json::json;

use super::args::{AddKey, ClientCommand, CreateClient, KeysCommand, UserCommand};
use super::*;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::oauth::clients::{self, NewClient};
use crate::oauth::keys::{self, MasterKey};
use crate::oauth::password::Passwords;
use crate::oauth::users::{self, NewUser};
use crate::store::{self, Store};

pub(super) async fn client(
    cmd: ClientCommand,
    config: &Config,
    store: &Store,
) -> Result<(), Failure> {
    let clock = SystemClock;
    match cmd {
        ClientCommand::Create(args) => create_client(config, store, *args).await,
        ClientCommand::List(out) => {
            let all = store::clients::list(store).await?;
            if out.json {
                print_json(&json!({ "clients": all }))
            } else {
                for c in &all {
                    let state = if c.enabled { "enabled" } else { "disabled" };
                    println!("{}\t{}\t{}\t{}", c.client_id, c.client_type, state, c.name);
                }
                Ok(())
            }
        }
        ClientCommand::Show(r) => {
            print_client(&clients::find(store, &r.client_id).await?, None, r.out.json)
        }
        ClientCommand::RotateSecret(r) => {
            let rotated = clients::rotate_secret(store, &clock, &r.client_id).await?;
            print_client(&rotated.client, rotated.secret.as_ref(), r.out.json)
        }
        ClientCommand::Disable(r) => print_client(
            &clients::set_enabled(store, &clock, &r.client_id, false).await?,
            None,
            r.out.json,
        ),
        ClientCommand::Enable(r) => print_client(
            &clients::set_enabled(store, &clock, &r.client_id, true).await?,
            None,
            r.out.json,
        ),
        ClientCommand::AddKey(args) => add_key(store, &args).await,
        ClientCommand::ListKeys(r) => {
            print_keys(&clients::list_keys(store, &r.client_id).await?, r.out.json)
        }
        ClientCommand::RemoveKey(args) => {
            clients::remove_key(store, &args.client_id, &args.kid).await?;
            if args.out.json {
                print_json(
                    &serde_json::json!({"client_id": args.client_id, "kid": args.kid, "removed": true}),
                )
            } else {
                println!("removed key {} of client {}", args.kid, args.client_id);
                Ok(())
            }
        }
    }
}

/// `client create`: prints the client, and its secret once.
async fn create_client(config: &Config, store: &Store, args: CreateClient) -> Result<(), Failure> {
    let master = MasterKey::from_config(config).map_err(|e| Failure::Runtime(e.to_string()))?;
    let created = clients::register(
        store,
        &SystemClock,
        &master,
        NewClient {
            name: args.name,
            client_type: args.client_type,
            redirect_uris: args.redirect_uris,
            grant_types: args.grants,
            scopes: args.scopes,
            auth_method: args.auth_method,
            cors_origins: args.cors_origins,
            pre_authorize: args.pre_authorize,
            admin_approved_only: args.admin_approved_only,
            access_token_ttl_secs: args.access_token_ttl,
            refresh_token_ttl_secs: args.refresh_token_ttl,
            refresh_token_idle_secs: args.refresh_token_idle,
            id_token_alg: args.id_token_alg,
            may_introspect: args.may_introspect,
            may_read_all_events: args.may_read_all_events,
            dpop_bound_access_tokens: args.dpop_bound,
            require_dpop_nonce: args.dpop_nonce,
            require_pushed_authorization_requests: args.require_par,
            profile: args.profile,
            post_logout_redirect_uris: args.post_logout_redirect_uris,
            backchannel_logout_uri: args.backchannel_logout_uri,
        },
    )
    .await?;
    print_client(&created.client, created.secret.as_ref(), args.out.json)
}

/// `client add-key`: a PEM key or certificate, or every key of a JWKS document.
async fn add_key(store: &Store, args: &AddKey) -> Result<(), Failure> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))
    };
    if let Some(path) = &args.jwks {
        let keys = clients::add_jwks(store, &SystemClock, &args.client_id, &read(path)?).await?;
        return print_keys(&keys, args.out.json);
    }
    let Some(path) = &args.pem else {
        return Err(Failure::Usage("--pem FILE or --jwks FILE".to_owned()));
    };
    let key = clients::add_key(store, &SystemClock, &args.client_id, &read(path)?).await?;
    if args.out.json {
        print_json(&serde_json::to_value(&key).map_err(|e| Failure::Runtime(e.to_string()))?)
    } else {
        println!("kid  {}\nkty  {}", key.kid, key.kty);
        Ok(())
    }
}

/// Records a change the CLI made in the audit log (actor `cli`).
pub(super) async fn record(
    store: &Store,
    clock: &SystemClock,
    event: crate::audit::Event,
) -> Result<(), Failure> {
    let event = event.actor("cli".to_owned());
    crate::audit::record_now(store, crate::clock::Clock::unix(clock), event)
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))
}

/// Prints `value` as one JSON object.
pub(super) fn print_serialized(value: &impl serde::Serialize) -> Result<(), Failure> {
    print_json(&serde_json::to_value(value).map_err(|e| Failure::Runtime(e.to_string()))?)
}

pub(super) async fn keys_command(
    cmd: KeysCommand,
    config: &Config,
    store: &Store,
) -> Result<(), Failure> {
    let clock = SystemClock;
    let failed = |e: crate::oauth::keys::KeyError| Failure::Runtime(e.to_string());
    let master = MasterKey::from_config(config).map_err(failed)?;
    match cmd {
        KeysCommand::List(out) => {
            let lines = keys::wanted_lines(store, config).await.map_err(failed)?;
            keys::ensure_lines(store, &clock, &master, &lines)
                .await
                .map_err(failed)?;
            let all = keys::list(store, &clock).await.map_err(failed)?;
            if out.json {
                return print_json(&json!({ "keys": all }));
            }
            for k in &all {
                println!("{}\t{}\t{}", k.kid, k.alg, k.state);
            }
            Ok(())
        }
        KeysCommand::Revoke(args) => {
            let revoked = match keys::revoke(store, &clock, &master, &args.kid).await {
                Err(e @ crate::oauth::keys::KeyError::NotFound(_)) => {
                    return Err(Failure::Usage(e.to_string()));
                }
                other => other.map_err(failed)?,
            };
            record(store, &clock, revoked.audit_event()).await?;
            if args.out.json {
                return print_serialized(&revoked);
            }
            match &revoked.successor {
                Some(next) => println!(
                    "revoked {}; new key {} signs now",
                    revoked.revoked, next.kid
                ),
                None => println!("revoked {}", revoked.revoked),
            }
            Ok(())
        }
        KeysCommand::Rotate(args) => {
            let publish = if args.immediately {
                0
            } else {
                config.key_publish_secs
            };
            let alg = match args.alg.as_deref() {
                Some(alg) => alg
                    .parse()
                    .map_err(|e: crate::model::Invalid| Failure::Usage(e.message))?,
                None => config.signing_alg,
            };
            let key = keys::rotate(store, &clock, &master, alg, publish)
                .await
                .map_err(failed)?;
            let event = crate::audit::Event::new("key.rotated")
                .detail("kid", key.kid.clone())
                .detail("immediately", args.immediately);
            record(store, &clock, event).await?;
            if args.out.json {
                return print_serialized(&key);
            }
            println!(
                "new key {} ({}): {}, signs from {}",
                key.kid, key.alg, key.state, key.activate_at
            );
            Ok(())
        }
    }
}

pub(super) async fn user(cmd: UserCommand, store: &Store) -> Result<(), Failure> {
    let clock = SystemClock;
    match cmd {
        UserCommand::Create(args) => {
            let password = read_password(args.password_stdin, args.password_file.as_ref())?;
            let user = users::create(
                store,
                &clock,
                &Passwords::start().map_err(|e| Failure::Runtime(e.to_string()))?,
                NewUser {
                    username: args.username,
                    email: args.email,
                    display_name: args.name,
                    password,
                },
            )
            .await?;
            print_user(&user, args.out.json)
        }
        UserCommand::List(out) => {
            let all = store::users::list(store).await?;
            if out.json {
                print_json(&json!({ "users": all }))
            } else {
                for u in &all {
                    let state = if u.enabled { "enabled" } else { "disabled" };
                    println!("{}\t{}\t{}\t{}", u.username, u.email, state, u.id);
                }
                Ok(())
            }
        }
        UserCommand::Show(r) => print_user(&users::find(store, &r.username).await?, r.out.json),
        UserCommand::Disable(r) => print_user(
            &users::set_enabled(store, &clock, &r.username, false).await?,
            r.out.json,
        ),
        UserCommand::Enable(r) => print_user(
            &users::set_enabled(store, &clock, &r.username, true).await?,
            r.out.json,
        ),
    }
}

pub(super) fn print_keys(keys: &[clients::ClientKey], json: bool) -> Result<(), Failure> {
    if json {
        print_json(&serde_json::json!({ "keys": keys }))
    } else {
        for key in keys {
            println!("{}\t{}", key.kid, key.kty);
        }
        Ok(())
    }
}
