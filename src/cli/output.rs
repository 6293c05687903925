//! What the CLI prints, and how it reads a password.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use super::Failure;
use crate::model::Client;
use crate::model::User;

pub(super) fn read_password(
    from_stdin: bool,
    file: Option<&PathBuf>,
) -> Result<SecretString, Failure> {
    let line = match (from_stdin, file) {
        (true, _) => {
            if std::io::stdin().is_terminal() {
                eprint!("password: ");
            }
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map_err(|e| {
                Failure::Runtime(format!("cannot read the password from stdin: {e}"))
            })?;
            line
        }
        (false, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| {
                Failure::Usage(format!(
                    "cannot read the password file {}: {e}",
                    path.display()
                ))
            })?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        (false, None) => {
            return Err(Failure::Usage(
                "give the password with --password-stdin or --password-file (never on the command line)".to_owned(),
            ));
        }
    };
    Ok(SecretString::from(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

pub(super) fn print_json(value: &Value) -> Result<(), Failure> {
    let text = serde_json::to_string(value).map_err(|e| Failure::Runtime(e.to_string()))?;
    println!("{text}");
    Ok(())
}

pub(super) fn print_client(
    client: &Client,
    secret: Option<&SecretString>,
    as_json: bool,
) -> Result<(), Failure> {
    if as_json {
        let mut value =
            serde_json::to_value(client).map_err(|e| Failure::Runtime(e.to_string()))?;
        if let (Some(secret), Some(map)) = (secret, value.as_object_mut()) {
            map.insert(
                "client_secret".to_owned(),
                Value::String(secret.expose_secret().to_owned()),
            );
        }
        return print_json(&value);
    }
    println!("client_id      {}", client.client_id);
    if let Some(secret) = secret {
        println!(
            "client_secret  {}  (shown once: store it now)",
            secret.expose_secret()
        );
    }
    println!("name           {}", client.name);
    println!(
        "type           {} ({})",
        client.client_type, client.token_endpoint_auth_method
    );
    println!("enabled        {}", client.enabled);
    println!("grant_types    {}", join(&client.grant_types));
    println!("scopes         {}", client.scopes);
    println!("redirect_uris  {}", join(&client.redirect_uris));
    if !client.cors_origins.is_empty() {
        println!("cors_origins   {}", join(&client.cors_origins));
    }
    if !client.pre_authorized_users.is_empty() {
        println!("pre_authorized {}", join(&client.pre_authorized_users));
    }
    Ok(())
}

pub(super) fn print_user(user: &User, as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(
            &serde_json::to_value(user).map_err(|e| Failure::Runtime(e.to_string()))?,
        );
    }
    println!("id        {}", user.id);
    println!("username  {}", user.username);
    println!("email     {}", user.email);
    if let Some(name) = &user.display_name {
        println!("name      {name}");
    }
    println!("enabled   {}", user.enabled);
    Ok(())
}

pub(super) fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}
