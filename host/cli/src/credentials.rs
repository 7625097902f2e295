//! `stratbox credentials ...`: broker secrets, prompted for, encrypted at rest.

use std::path::Path;

use anyhow::{Result, bail};
use clap::Subcommand;

use stratbox_capital::{DEMO_URL, LIVE_URL, RestClient, RestConfig, wire};
use stratbox_capital::{CapitalCredentials, CredentialStore};

#[derive(Subcommand)]
pub enum CredentialsCmd {
    /// Store the credentials of a broker (`capital`): prompts for a passphrase and the secrets.
    Set { broker: String },
    /// Decrypt with the passphrase and show which credentials are stored (masked).
    Show,
    /// Log in to Capital.com with the stored credentials and report the account.
    Check {
        /// REST base URL (default: the demo host; a mock: http://127.0.0.1:PORT).
        #[arg(long)]
        url: Option<String>,
        /// Use the live host instead of the demo.
        #[arg(long, conflicts_with = "url")]
        live: bool,
        /// Send the password in clear inside TLS instead of RSA-encrypted.
        #[arg(long)]
        plain_password: bool,
    },
}

/// The REST base URL of `--url` / `--live` (default: demo).
pub(crate) fn capital_url(url: Option<String>, live: bool) -> String {
    url.unwrap_or_else(|| if live { LIVE_URL } else { DEMO_URL }.to_owned())
}

/// The stored Capital.com credentials, decrypted with a prompted passphrase.
pub(crate) fn load_capital(data_dir: &Path) -> Result<CapitalCredentials> {
    let store = CredentialStore::new(data_dir.join("credentials.json"));
    let passphrase = secret("Passphrase: ")?;
    Ok(store.load(&passphrase)?)
}

/// A secret: prompted for without echo on a terminal, else one line of
/// standard input. It lives in one buffer, zeroised when dropped: read into
/// room reserved up front (so growing it leaves no copy behind) and trimmed
/// in place.
pub(crate) fn secret(prompt: &str) -> Result<zeroize::Zeroizing<String>> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return Ok(zeroize::Zeroizing::new(rpassword::prompt_password(prompt)?));
    }
    let mut line = zeroize::Zeroizing::new(String::with_capacity(4096));
    std::io::stdin().read_line(&mut line)?;
    while line.ends_with(['\n', '\r']) {
        line.pop();
    }
    if line.is_empty() {
        bail!("no input for `{}` on standard input", prompt.trim_end_matches([':', ' ']));
    }
    Ok(line)
}

pub fn credentials(cmd: CredentialsCmd, data_dir: &Path) -> Result<()> {
    let store = CredentialStore::new(data_dir.join("credentials.json"));
    match cmd {
        CredentialsCmd::Set { broker } => {
            if broker != "capital" {
                bail!("unknown broker `{broker}`: the supported one is `capital`");
            }
            let passphrase = secret("Passphrase (12+ characters): ")?;
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) && *passphrase != *secret("Passphrase again: ")? {
                bail!("the two passphrases differ; nothing was saved");
            }
            // Moved out of their buffers (no copy); the credentials zeroise themselves on drop.
            let creds = CapitalCredentials {
                api_key: std::mem::take(&mut *secret("Capital.com API key: ")?),
                identifier: std::mem::take(&mut *secret("Capital.com login (identifier): ")?),
                password: std::mem::take(&mut *secret("Capital.com API key password: ")?),
            };
            store.save(&passphrase, &creds)?;
            println!("saved the capital credentials to {} (encrypted, mode 0600)", store.path().display());
        }
        CredentialsCmd::Show => {
            let creds = load_capital(data_dir)?;
            println!("{}: capital {creds:?}", store.path().display());
        }
        CredentialsCmd::Check { url, live, plain_password } => {
            let creds = load_capital(data_dir)?;
            let config = RestConfig { base_url: capital_url(url, live), encrypt_password: !plain_password, ..RestConfig::default() };
            let client = RestClient::new(config, creds)?;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let session = client.login().await?;
                client.ping().await?;
                let server_ms = client.server_time().await?;
                println!(
                    "login OK at {}: account {} ({}, {}), balance {:.2} {}, available {:.2}; streaming host {}; server time {}",
                    client.config().base_url,
                    session.current_account_id,
                    session.account_type,
                    if session.has_active_live_accounts { "live accounts" } else { "demo only" },
                    session.account_info.balance,
                    session.currency_iso_code,
                    session.account_info.available,
                    session.streaming_host,
                    wire::format_query_time(server_ms),
                );
                client.logout().await?;
                anyhow::Ok(())
            })?;
        }
    }
    Ok(())
}
