//! S3 as AWS enforces it, for the e2e rows of issue 24: moto with IAM
//! authentication on (`INITIAL_NO_AUTH_ACTION_COUNT`), which checks every request's
//! SigV4 signature against an access key it issued and enforces `If-None-Match`
//! on PutObject and CompleteMultipartUpload; and DuckDB (PyPI, with its httpfs
//! extension from PyPI too) to read back what the exporter wrote.

use crate::e2e::Backends;
use crate::services::{self, Service};
use std::path::Path;

/// The unauthenticated calls that create the IAM user, its policy and its key.
const SETUP_CALLS: usize = 3;

const MAKE_KEY: &str = r#"
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], aws_access_key_id="setup",
                   aws_secret_access_key="setup", region_name="us-east-1")
iam.create_user(UserName="usage-e2e")
iam.put_user_policy(UserName="usage-e2e", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="usage-e2e")["AccessKey"]
print(key["AccessKeyId"] + ":" + key["SecretAccessKey"])
"#;

/// Starts the signature-checking moto, makes its access key, installs DuckDB.
/// Sets `USAGE_E2E_MOTO_SIGNED`, `USAGE_E2E_MOTO_SIGNED_KEYS` and `USAGE_E2E_PYTHON`.
pub(crate) fn start(work: &Path, b: &mut Backends) -> Result<(), String> {
    let venv = services::venv(work)?;
    let bin = services::pip_install(&venv, "moto_server", "moto[server]==5.2.5")?;
    let python = services::pip_install_module(
        &venv,
        "duckdb_extension_httpfs",
        &[
            "duckdb==1.5.5",
            "duckdb-extensions==1.5.5",
            "duckdb-extension-httpfs==1.5.5",
        ],
    )?;
    let port = services::free_port()?;
    let dir = work.join("run/moto-signed");
    let mut command = vec!["env".to_string(), format!("INITIAL_NO_AUTH_ACTION_COUNT={SETUP_CALLS}")];
    command.extend([
        bin.display().to_string(),
        "-H".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ]);
    let mut s = Service::spawn("moto-signed", &dir, command)?;
    // Only the port: an HTTP probe would spend one of the unauthenticated calls.
    services::wait_for_port(&mut s, port, std::time::Duration::from_secs(60))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let keys = services::run(&python.display().to_string(), &["-c", MAKE_KEY, &endpoint])?;
    eprintln!(
        "==> moto (SigV4 checked, conditional writes) on 127.0.0.1:{port}, pid {:?}",
        s.pid()
    );
    b.services.push(s);
    b.env
        .insert("USAGE_E2E_MOTO_SIGNED".into(), format!("127.0.0.1:{port}"));
    b.env
        .insert("USAGE_E2E_MOTO_SIGNED_KEYS".into(), keys.trim().to_string());
    b.env.insert("USAGE_E2E_PYTHON".into(), python.display().to_string());
    Ok(())
}
