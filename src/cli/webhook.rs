//! `gatehouse webhook …`: the admin API's webhook endpoints, on the command line.

use std::sync::Arc;

use serde_json::json;

use super::Failure;
use super::args::WebhookCommand;
use super::output::print_json;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::events::endpoints::{self, DeliveryList, Endpoint, EndpointWithSecret, NewEndpoint};
use crate::events::{Ctx, Hub};
use crate::oauth::keys::MasterKey;
use crate::store::Store;

pub(super) async fn command(
    cmd: WebhookCommand,
    config: &Config,
    store: &Store,
) -> Result<(), Failure> {
    let clock: SharedClock = Arc::new(SystemClock);
    let hub = Hub::default();
    let ctx = Ctx {
        store,
        clock: &clock,
        config,
        hub: &hub,
    };
    let master = || MasterKey::from_config(config).map_err(|e| Failure::Runtime(e.to_string()));
    match cmd {
        WebhookCommand::Create(args) => {
            let created = endpoints::create(
                &ctx,
                &master()?,
                NewEndpoint {
                    url: args.url,
                    event_types: args.event_types,
                    description: args.description,
                },
            )
            .await?;
            print_with_secret(&created, args.out.json)
        }
        WebhookCommand::List(out) => {
            let all = endpoints::list(&ctx).await?;
            if out.json {
                return print_json(&json!(all));
            }
            for e in &all.items {
                print_line(e);
            }
            Ok(())
        }
        WebhookCommand::Disable(r) => print(
            &endpoints::set_enabled(&ctx, &r.id, false).await?,
            r.out.json,
        ),
        WebhookCommand::Enable(r) => print(
            &endpoints::set_enabled(&ctx, &r.id, true).await?,
            r.out.json,
        ),
        WebhookCommand::Delete(r) => {
            endpoints::delete(&ctx, &r.id).await?;
            if r.out.json {
                print_json(&json!({"id": r.id, "deleted": true}))
            } else {
                println!("deleted webhook {}", r.id);
                Ok(())
            }
        }
        WebhookCommand::RotateSecret(r) => {
            let rotated = endpoints::rotate_secret(&ctx, &master()?, &r.id).await?;
            print_with_secret(&rotated, r.out.json)
        }
        WebhookCommand::Deliveries(args) => {
            let page = endpoints::deliveries(
                &ctx,
                &args.id,
                args.status.as_deref(),
                None,
                Some(args.limit),
            )
            .await?;
            print_deliveries(&page, args.out.json)
        }
        WebhookCommand::Redeliver(args) => {
            endpoints::redeliver(&ctx, &args.id, &args.delivery_id).await?;
            if args.out.json {
                print_json(&json!({"id": args.delivery_id, "queued": true}))
            } else {
                println!("queued delivery {} again", args.delivery_id);
                Ok(())
            }
        }
    }
}

fn print_deliveries(page: &DeliveryList, json: bool) -> Result<(), Failure> {
    if json {
        return print_json(&json!(page));
    }
    for d in &page.items {
        let answer = d
            .attempts
            .last()
            .and_then(|a| a.status_code.map(|s| s.to_string()).or(a.error.clone()))
            .unwrap_or_else(|| "-".to_owned());
        println!(
            "{}\t{}\t{}\t{}\tattempts={}\t{}",
            d.id,
            d.event_id,
            d.event_type,
            d.status,
            d.attempts.len(),
            answer
        );
    }
    Ok(())
}

fn print_line(e: &Endpoint) {
    let types = if e.event_types.is_empty() {
        "*".to_owned()
    } else {
        e.event_types.join(",")
    };
    println!("{}\t{}\t{}\t{}", e.id, e.status, types, e.url);
}

fn print(e: &Endpoint, json: bool) -> Result<(), Failure> {
    if json {
        return print_json(&json!(e));
    }
    print_line(e);
    Ok(())
}

fn print_with_secret(e: &EndpointWithSecret, json: bool) -> Result<(), Failure> {
    if json {
        return print_json(&json!(e));
    }
    print_line(&e.endpoint);
    println!("secret: {} (shown once; keep it)", e.secret);
    Ok(())
}
