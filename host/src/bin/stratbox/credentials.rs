//! `stratbox credentials ...`: broker secrets, prompted for, encrypted at rest.

use std::path::Path;

use anyhow::{Result, bail};
use clap::Subcommand;

use stratbox_host::credentials::{CapitalCredentials, CredentialStore};

#[derive(Subcommand)]
pub enum CredentialsCmd {
    /// Store the credentials of a broker (`capital`): prompts for a passphrase and the secrets.
    Set { broker: String },
    /// Decrypt with the passphrase and show which credentials are stored (masked).
    Show,
}

/// A secret: prompted for without echo on a terminal, else one line of standard input.
fn secret(prompt: &str) -> Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password(prompt)?);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
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
            let passphrase = zeroize::Zeroizing::new(secret("Passphrase (12+ characters): ")?);
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) && *passphrase != secret("Passphrase again: ")? {
                bail!("the two passphrases differ; nothing was saved");
            }
            let creds = CapitalCredentials {
                api_key: secret("Capital.com API key: ")?,
                identifier: secret("Capital.com login (identifier): ")?,
                password: secret("Capital.com API key password: ")?,
            };
            store.save(&passphrase, &creds)?;
            println!("saved the capital credentials to {} (encrypted, mode 0600)", store.path().display());
        }
        CredentialsCmd::Show => {
            let passphrase = zeroize::Zeroizing::new(secret("Passphrase: ")?);
            let creds = store.load(&passphrase)?;
            println!("{}: capital {creds:?}", store.path().display());
        }
    }
    Ok(())
}
