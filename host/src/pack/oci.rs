//! Push and pull Vigil rule packs as OCI artifacts.
//!
//! A rule pack is a small set of files: the pack manifest (JSON, exactly the bytes that were
//! signed), an optional signature (JSON) and the rule components (`.wasm`), each named by a
//! relative path such as `rules/push-flood.wasm`. [`push`] stores such a pack in an OCI registry
//! as one artifact, [`pull`] fetches it back by tag or by digest and checks it on the way.
//!
//! # Layout in the registry
//!
//! The pack is an OCI 1.1 style artifact: an image manifest
//! (`application/vnd.oci.image.manifest.v1+json`) whose `artifactType` is
//! `application/vnd.vigil.pack.v1+json` and whose config is the OCI empty descriptor
//! (`application/vnd.oci.empty.v1+json`, the two bytes `{}`). Docker's registry 2.8
//! (distribution 2.8.2, as packaged by Debian) stores such a manifest byte for byte and serves it
//! back with `artifactType` intact; it does insist that the `{}` config blob is really uploaded,
//! as it checks that every blob a manifest names exists in the repository. So push uploads it.
//!
//! Every file is one layer, in this order, each with the annotation
//! `org.opencontainers.image.title` set to its path:
//!
//! | file       | layer media type                               | title           |
//! |------------|------------------------------------------------|-----------------|
//! | manifest   | `application/vnd.vigil.pack.manifest.v1+json`  | `manifest.json` |
//! | signature  | `application/vnd.vigil.pack.signature.v1+json` | `manifest.sig`  |
//! | components | `application/vnd.vigil.rule.component.v1+wasm` | relative path   |
//!
//! Pull takes the artifact type from `artifactType`, or from the config media type when
//! `artifactType` is absent (the OCI 1.1 rule), so a pack whose config blob itself carries the
//! Vigil media type is accepted too.
//!
//! # References
//!
//! `host[:port]/repository:tag`, or `host[:port]/repository@sha256:...` for pull. The registry
//! host must be written out: a bare `acme/pack:1.0` is refused rather than taken to mean Docker
//! Hub. Push needs a tag. Registries listed in [`RegistryOptions::insecure`] are reached over
//! plain HTTP, all others over HTTPS (rustls, webpki roots).
//!
//! # What pull checks
//!
//! The registry is not trusted. Pull refuses: an artifact of any other type; a layer of an
//! unknown media type, or one with external `urls`; a layer whose title is missing, duplicated or
//! unsafe as a relative path (empty, absolute, `..`, `.`, empty segments, backslashes, control
//! characters); anything but exactly one manifest layer and at most one signature layer; and
//! digests other than `sha256:` with 64 lowercase hex digits. Sizes are checked twice: from the
//! layer descriptors before anything is downloaded (each blob at most
//! [`RegistryOptions::max_blob_bytes`], all layers together at most
//! [`RegistryOptions::max_total_bytes`]), and on the bytes received, which may not run past the
//! declared size (the download is cut off there) nor fall short of it. Every blob's sha256 is
//! computed here and compared with its layer digest, whatever the client library checked, and a
//! pull by digest also checks the image manifest's own sha256. The image manifest is read whole
//! by `oci-client` before any check can run, so only its size after the fact is limited
//! (4 MiB, the cap Docker's registry puts on manifests it accepts).
//!
//! Push refuses what pull would refuse (bad or duplicate paths, packs over the limits), and empty
//! files, which `oci-client` 0.15 cannot upload. Pushing the same files twice gives the same
//! image manifest digest, since nothing time-dependent goes into it.
//!
//! # Why blocking
//!
//! Vigil's CLI is synchronous, while `oci-client` is async. Each call builds a private
//! current-thread tokio runtime, runs to completion and drops it, so nothing outlives the call and
//! the caller needs no runtime. Such a call must not run inside a tokio runtime (blocking there
//! would stall or panic it); that case is detected and reported as an error.
//!
//! # Errors
//!
//! Errors are [`anyhow`](mod@anyhow) chains whose outer message names the reference and the operation; print
//! them with `{:#}` to get the whole line, e.g. `cannot pull 127.0.0.1:5000/acme/pack:1.0: the
//! artifact is not a Vigil pack (artifact type application/x-other)`. Credentials never appear in
//! them: they travel only in request headers, and [`RegistryOptions`]'s `Debug` hides them.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use oci_client::annotations::ORG_OPENCONTAINERS_IMAGE_TITLE;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::{PackFiles, check_component_path};

/// Artifact type of a Vigil pack (and config media type in the config-blob variant).
const PACK_ARTIFACT_TYPE: &str = "application/vnd.vigil.pack.v1+json";
/// The OCI 1.1 empty descriptor used as config, and its only valid content.
const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_CONFIG: &[u8] = b"{}";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.vigil.pack.manifest.v1+json";
const SIGNATURE_MEDIA_TYPE: &str = "application/vnd.vigil.pack.signature.v1+json";
const COMPONENT_MEDIA_TYPE: &str = "application/vnd.vigil.rule.component.v1+wasm";
/// Layer titles are the pack's own file names.
const MANIFEST_TITLE: &str = super::MANIFEST_FILE;
const SIGNATURE_TITLE: &str = super::SIGNATURE_FILE;

const MIB: u64 = 1024 * 1024;
/// Default for [`RegistryOptions::max_blob_bytes`]: generous for a rule component.
const DEFAULT_MAX_BLOB_BYTES: u64 = super::MAX_COMPONENT_BYTES;
/// Default for [`RegistryOptions::max_total_bytes`].
const DEFAULT_MAX_TOTAL_BYTES: u64 = super::MAX_PACK_BYTES;
/// Largest image manifest accepted; Docker's registry refuses to store bigger ones.
const MAX_IMAGE_MANIFEST_BYTES: usize = 4 * MIB as usize;

/// Bounds on network waits so that a silent registry makes the CLI fail rather than hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How to reach a registry and how much to accept from it.
#[derive(Clone)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`) reached over plain HTTP instead of HTTPS (loopback test registries).
    /// Compared as strings with the registry part of the reference: `localhost:5000` does not
    /// cover `127.0.0.1:5000`.
    pub insecure: Vec<String>,
    /// Basic auth (user, password), else anonymous.
    pub basic_auth: Option<(String, String)>,
    /// Largest blob accepted on pull, bytes (default 64 MiB); the same limit applies on push.
    pub max_blob_bytes: u64,
    /// Largest pack accepted on pull, all layers together, bytes (default 256 MiB).
    pub max_total_bytes: u64,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            basic_auth: None,
            max_blob_bytes: DEFAULT_MAX_BLOB_BYTES,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
        }
    }
}

// Written by hand so that logging the options can never print the password.
impl fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("insecure", &self.insecure)
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|(user, _)| (user, "<hidden>")),
            )
            .field("max_blob_bytes", &self.max_blob_bytes)
            .field("max_total_bytes", &self.max_total_bytes)
            .finish()
    }
}

/// Pushes; returns the digest of the OCI image manifest ("sha256:...") so an operator can pin by digest.
pub fn push(reference: &str, files: &PackFiles, options: &RegistryOptions) -> Result<String> {
    push_inner(reference, files, options).with_context(|| format!("cannot push {reference}"))
}

/// Pulls by tag (`host:port/repo:tag`) or digest (`host:port/repo@sha256:...`).
pub fn pull(reference: &str, options: &RegistryOptions) -> Result<PackFiles> {
    pull_inner(reference, options).with_context(|| format!("cannot pull {reference}"))
}

fn push_inner(reference: &str, files: &PackFiles, options: &RegistryOptions) -> Result<String> {
    let image = parse_reference(reference)?;
    if image.digest().is_some() {
        bail!("push needs a tag (host/repo:tag), not a digest");
    }
    let layers = pack_layers(files)?;
    check_layout(
        layers
            .iter()
            .map(|layer| (layer.kind, layer.title.as_str(), layer.data.len() as u64)),
        options,
    )?;

    let empty_config = OciDescriptor {
        media_type: EMPTY_CONFIG_MEDIA_TYPE.to_string(),
        digest: sha256_digest(EMPTY_CONFIG),
        size: EMPTY_CONFIG.len() as i64,
        urls: None,
        annotations: None,
    };
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
        config: empty_config.clone(),
        layers: layers.iter().map(PackLayer::descriptor).collect(),
        subject: None,
        artifact_type: Some(PACK_ARTIFACT_TYPE.to_string()),
        annotations: None,
    };
    // Serialized here rather than by `Client::push_manifest` so that the digest returned is the
    // sha256 of exactly the bytes sent, without depending on the client's JSON formatter.
    let body = serde_json::to_vec(&manifest).context("cannot serialize the image manifest")?;
    let digest = sha256_digest(&body);

    let plain_http = options
        .insecure
        .iter()
        .any(|host| host == image.resolve_registry());
    let client = client(options)?;
    let auth = auth(options);
    block_on(async {
        client
            .store_auth_if_needed(image.resolve_registry(), &auth)
            .await;
        // One blob at a time: packs are small, and a failure then names the one blob that failed.
        let mut pushed = HashSet::new();
        let blobs = std::iter::once((EMPTY_CONFIG, &empty_config.digest, "the empty config"))
            .chain(
                layers
                    .iter()
                    .map(|layer| (layer.data, &layer.digest, layer.title.as_str())),
            );
        for (data, digest, name) in blobs {
            if pushed.insert(digest.clone()) {
                client
                    .push_blob(&image, data, digest)
                    .await
                    .map_err(registry_error(plain_http))
                    .with_context(|| format!("cannot upload {name} ({digest})"))?;
            }
        }
        let location = client
            .push_manifest_raw(&image, body, OCI_IMAGE_MEDIA_TYPE.parse()?)
            .await
            .map_err(registry_error(plain_http))
            .context("the registry did not accept the image manifest")?;
        // Registries answer with the manifest's address by digest; a different digest would mean
        // the registry rewrote the manifest and the digest returned here would not pin it.
        if let Some((_, stored)) = location.rsplit_once("/manifests/")
            && stored.starts_with("sha256:")
            && stored != digest
        {
            bail!("the registry stored the image manifest as {stored}, expected {digest}");
        }
        Ok(digest)
    })?
}

fn pull_inner(reference: &str, options: &RegistryOptions) -> Result<PackFiles> {
    let image = parse_reference(reference)?;
    let plain_http = options
        .insecure
        .iter()
        .any(|host| host == image.resolve_registry());
    let client = client(options)?;
    let auth = auth(options);
    block_on(async {
        let (raw, _) = client
            .pull_manifest_raw(&image, &auth, &[OCI_IMAGE_MEDIA_TYPE])
            .await
            .map_err(registry_error(plain_http))
            .context("cannot fetch the image manifest")?;
        ensure!(
            raw.len() <= MAX_IMAGE_MANIFEST_BYTES,
            "the image manifest is {}, more than the {} limit",
            size(raw.len() as u64),
            size(MAX_IMAGE_MANIFEST_BYTES as u64)
        );
        if let Some(expected) = image.digest() {
            let actual = sha256_digest(&raw);
            ensure!(
                actual == expected,
                "the image manifest has digest {actual}, not the {expected} asked for"
            );
        }
        let manifest: OciImageManifest = serde_json::from_slice(&raw)
            .context("the registry sent something that is not an OCI image manifest")?;
        let plan = plan_pull(&manifest, options)?;

        let mut files = PackFiles {
            manifest: Vec::new(),
            signature: None,
            components: Vec::new(),
        };
        for layer in plan {
            let data = fetch_blob(&client, &image, &layer, plain_http).await?;
            match layer.kind {
                LayerKind::Manifest => files.manifest = data,
                LayerKind::Signature => files.signature = Some(data),
                LayerKind::Component => files.components.push((layer.title, data)),
            }
        }
        Ok(files)
    })?
}

/// What a layer holds, from its media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LayerKind {
    Manifest,
    Signature,
    Component,
}

impl LayerKind {
    fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            MANIFEST_MEDIA_TYPE => Some(Self::Manifest),
            SIGNATURE_MEDIA_TYPE => Some(Self::Signature),
            COMPONENT_MEDIA_TYPE => Some(Self::Component),
            _ => None,
        }
    }

    fn media_type(self) -> &'static str {
        match self {
            Self::Manifest => MANIFEST_MEDIA_TYPE,
            Self::Signature => SIGNATURE_MEDIA_TYPE,
            Self::Component => COMPONENT_MEDIA_TYPE,
        }
    }
}

/// One file of a pack on its way up.
struct PackLayer<'a> {
    kind: LayerKind,
    title: String,
    data: &'a [u8],
    digest: String,
}

impl PackLayer<'_> {
    fn descriptor(&self) -> OciDescriptor {
        OciDescriptor {
            media_type: self.kind.media_type().to_string(),
            digest: self.digest.clone(),
            size: self.data.len() as i64,
            urls: None,
            annotations: Some(BTreeMap::from([(
                ORG_OPENCONTAINERS_IMAGE_TITLE.to_string(),
                self.title.clone(),
            )])),
        }
    }
}

fn pack_layers(files: &PackFiles) -> Result<Vec<PackLayer<'_>>> {
    let manifest = std::iter::once((LayerKind::Manifest, MANIFEST_TITLE, &files.manifest));
    let signature = files
        .signature
        .iter()
        .map(|signature| (LayerKind::Signature, SIGNATURE_TITLE, signature));
    let components = files
        .components
        .iter()
        .map(|(path, data)| (LayerKind::Component, path.as_str(), data));
    manifest
        .chain(signature)
        .chain(components)
        .map(|(kind, title, data)| {
            // oci-client 0.15 refuses to upload an empty blob (PushNoDataError); say so plainly.
            ensure!(!data.is_empty(), "file {title:?} is empty");
            Ok(PackLayer {
                kind,
                title: title.to_string(),
                data,
                digest: sha256_digest(data),
            })
        })
        .collect()
}

/// One layer that pull has checked and will download.
#[derive(Debug)]
struct PlannedLayer {
    kind: LayerKind,
    title: String,
    digest: String,
    size: u64,
}

/// Checks a pulled image manifest and lists the layers to download, before any download.
fn plan_pull(manifest: &OciImageManifest, options: &RegistryOptions) -> Result<Vec<PlannedLayer>> {
    ensure!(
        manifest.schema_version == 2,
        "unsupported image manifest schema version {}",
        manifest.schema_version
    );
    if let Some(media_type) = &manifest.media_type {
        ensure!(
            media_type == OCI_IMAGE_MEDIA_TYPE,
            "the manifest is a {media_type}, not an OCI image manifest"
        );
    }
    // OCI 1.1: the artifact type is `artifactType`, else the config media type.
    let artifact_type = manifest
        .artifact_type
        .as_deref()
        .unwrap_or(&manifest.config.media_type);
    ensure!(
        artifact_type == PACK_ARTIFACT_TYPE,
        "the artifact is not a Vigil pack (artifact type {artifact_type})"
    );
    let config_type = manifest.config.media_type.as_str();
    ensure!(
        config_type == EMPTY_CONFIG_MEDIA_TYPE || config_type == PACK_ARTIFACT_TYPE,
        "the artifact has an unexpected config media type {config_type}"
    );

    let mut plan = Vec::with_capacity(manifest.layers.len());
    for (index, layer) in manifest.layers.iter().enumerate() {
        let title = layer
            .annotations
            .as_ref()
            .and_then(|annotations| annotations.get(ORG_OPENCONTAINERS_IMAGE_TITLE))
            .ok_or_else(|| anyhow!("layer {index} has no {ORG_OPENCONTAINERS_IMAGE_TITLE}"))?;
        let kind = LayerKind::from_media_type(&layer.media_type).ok_or_else(|| {
            anyhow!(
                "layer {title:?} has unknown media type {}",
                layer.media_type
            )
        })?;
        // External URLs would make the client fetch from hosts other than the registry.
        ensure!(
            layer.urls.as_ref().is_none_or(Vec::is_empty),
            "layer {title:?} points to external URLs"
        );
        check_digest(&layer.digest).with_context(|| format!("layer {title:?}"))?;
        let size = u64::try_from(layer.size)
            .map_err(|_| anyhow!("layer {title:?} has negative size {}", layer.size))?;
        plan.push(PlannedLayer {
            kind,
            title: title.clone(),
            digest: layer.digest.clone(),
            size,
        });
    }
    check_layout(
        plan.iter()
            .map(|layer| (layer.kind, layer.title.as_str(), layer.size)),
        options,
    )?;
    Ok(plan)
}

/// The rules a pack's layers follow, on push and on pull: titles are unique, the manifest and
/// signature carry their fixed titles, components are named as in any pack
/// (`rules/<file>.wasm`, [`check_component_path`]), exactly one manifest, at most one signature,
/// and sizes stay within the limits.
fn check_layout<'a>(
    layers: impl Iterator<Item = (LayerKind, &'a str, u64)>,
    options: &RegistryOptions,
) -> Result<()> {
    let mut titles = HashSet::new();
    let (mut manifests, mut signatures, mut total) = (0, 0, 0u64);
    for (kind, title, bytes) in layers {
        ensure!(titles.insert(title), "two files are named {title:?}");
        match kind {
            LayerKind::Manifest => {
                manifests += 1;
                ensure!(
                    title == MANIFEST_TITLE,
                    "the pack manifest is named {title:?}, not {MANIFEST_TITLE:?}"
                );
            }
            LayerKind::Signature => {
                signatures += 1;
                ensure!(
                    title == SIGNATURE_TITLE,
                    "the signature is named {title:?}, not {SIGNATURE_TITLE:?}"
                );
            }
            // The same rule as for a directory or a .vpack: `rules/<file>.wasm`.
            LayerKind::Component => check_component_path(title)?,
        }
        ensure!(
            bytes <= options.max_blob_bytes,
            "blob {title} is {}, more than the {} limit",
            size(bytes),
            size(options.max_blob_bytes)
        );
        total = total.saturating_add(bytes);
    }
    ensure!(
        manifests == 1,
        "the pack has {manifests} manifest layers, not exactly one"
    );
    ensure!(
        signatures <= 1,
        "the pack has {signatures} signature layers, at most one is allowed"
    );
    ensure!(
        total <= options.max_total_bytes,
        "the pack is {}, more than the {} limit",
        size(total),
        size(options.max_total_bytes)
    );
    Ok(())
}

/// Only sha256 digests in canonical form: they are compared as strings and go into URLs.
fn check_digest(digest: &str) -> Result<()> {
    let valid = digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    ensure!(valid, "digest {digest:?} is not a sha256 digest");
    Ok(())
}

async fn fetch_blob(
    client: &Client,
    image: &Reference,
    layer: &PlannedLayer,
    plain_http: bool,
) -> Result<Vec<u8>> {
    let title = &layer.title;
    // The descriptor size was checked against the limits; cap the download at that size so a
    // registry sending more is cut off instead of filling memory.
    let mut out = CappedBuffer::new(layer.size);
    // Passing the bare digest (no `urls`) keeps the client on the registry.
    let result = client
        .pull_blob(image, layer.digest.as_str(), &mut out)
        .await;
    if out.overflowed {
        bail!(
            "blob {title} is larger than the {} its layer declares",
            size(layer.size)
        );
    }
    result
        .map_err(registry_error(plain_http))
        .with_context(|| format!("cannot download blob {title}"))?;
    let data = out.bytes;
    ensure!(
        data.len() as u64 == layer.size,
        "blob {title} is {} bytes, its layer declares {}",
        data.len(),
        layer.size
    );
    let actual = sha256_digest(&data);
    ensure!(
        actual == layer.digest,
        "blob {title} has digest {actual}, its layer declares {}",
        layer.digest
    );
    Ok(data)
}

/// An in-memory sink for `Client::pull_blob` that fails once more than `limit` bytes arrive.
struct CappedBuffer {
    bytes: Vec<u8>,
    limit: u64,
    overflowed: bool,
}

impl CappedBuffer {
    fn new(limit: u64) -> Self {
        Self {
            // `limit` is a descriptor size already held to `max_blob_bytes`.
            bytes: Vec::with_capacity(usize::try_from(limit).unwrap_or(0)),
            limit,
            overflowed: false,
        }
    }
}

impl tokio::io::AsyncWrite for CappedBuffer {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.bytes.len() as u64 + buf.len() as u64 > this.limit {
            this.overflowed = true;
            return Poll::Ready(Err(io::Error::other("blob larger than declared")));
        }
        this.bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn parse_reference(reference: &str) -> Result<Reference> {
    let image: Reference = reference
        .parse()
        .map_err(|e| anyhow!("{reference:?} is not a valid reference: {e}"))?;
    // A reference without a host would silently mean Docker Hub; packs name their registry.
    ensure!(
        reference.starts_with(&format!("{}/", image.registry())),
        "the reference must start with the registry host (host[:port]/repository:tag)"
    );
    Ok(image)
}

fn client(options: &RegistryOptions) -> Result<Client> {
    let config = ClientConfig {
        protocol: ClientProtocol::HttpsExcept(options.insecure.clone()),
        // A pack is a single image manifest; never let the client pick from an index.
        platform_resolver: None,
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        ..ClientConfig::default()
    };
    // Not `Client::new`: on a builder error it logs a warning and carries on with a default
    // client, which would silently drop the plain-HTTP list and the timeouts.
    Client::try_from(config).context("cannot set up the HTTP client")
}

fn auth(options: &RegistryOptions) -> RegistryAuth {
    match &options.basic_auth {
        Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
        None => RegistryAuth::Anonymous,
    }
}

/// Runs `future` to completion on a private current-thread runtime.
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    ensure!(
        tokio::runtime::Handle::try_current().is_err(),
        "the blocking OCI client was called from inside a tokio runtime"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    Ok(runtime.block_on(future))
}

/// Puts a plain-words reading in front of the registry's answers that a person can act on; the
/// client's own message (URL, registry error codes) stays underneath as the cause. `plain_http`
/// says whether the registry was listed as insecure, for the hint on connection failures.
fn registry_error(plain_http: bool) -> impl Fn(OciDistributionError) -> anyhow::Error {
    move |err| {
        const CREDENTIALS: &str = "the registry wants (other) credentials";
        let hint = match &err {
            OciDistributionError::RegistryError { envelope, .. } => {
                envelope.errors.iter().find_map(|e| match e.code {
                    OciErrorCode::ManifestUnknown | OciErrorCode::NotFound => {
                        Some("the registry has no such tag or digest")
                    }
                    OciErrorCode::NameUnknown => Some("the registry has no such repository"),
                    OciErrorCode::BlobUnknown => Some("the registry is missing a blob"),
                    OciErrorCode::Unauthorized => Some(CREDENTIALS),
                    OciErrorCode::Denied => Some("the registry denied access"),
                    _ => None,
                })
            }
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_)
            | OciDistributionError::ServerError { code: 401, .. } => Some(CREDENTIALS),
            OciDistributionError::ServerError { code: 403, .. } => {
                Some("the registry denied access")
            }
            OciDistributionError::ServerError { code: 404, .. } => {
                Some("not found in the registry")
            }
            OciDistributionError::RequestError(e) if e.is_connect() && !plain_http => {
                Some("cannot connect over HTTPS (for a plain-HTTP registry, list it as insecure)")
            }
            OciDistributionError::RequestError(e) if e.is_connect() => {
                Some("cannot connect to the registry")
            }
            OciDistributionError::RequestError(e) if e.is_timeout() => {
                Some("the registry did not answer in time")
            }
            _ => None,
        };
        match hint {
            Some(hint) => anyhow::Error::new(err).context(hint),
            None => anyhow::Error::new(err),
        }
    }
}

fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", super::sha256_hex(data))
}

/// A size for people: whole MiB when it is one, else MiB with a decimal, else bytes.
fn size(bytes: u64) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB ({bytes} bytes)", bytes as f64 / MIB as f64)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(media_type: &str, title: Option<&str>, data: &[u8]) -> OciDescriptor {
        OciDescriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(data),
            size: data.len() as i64,
            urls: None,
            annotations: title.map(|title| {
                BTreeMap::from([(
                    ORG_OPENCONTAINERS_IMAGE_TITLE.to_string(),
                    title.to_string(),
                )])
            }),
        }
    }

    fn pack_manifest(layers: Vec<OciDescriptor>) -> OciImageManifest {
        OciImageManifest {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
            config: descriptor(EMPTY_CONFIG_MEDIA_TYPE, None, EMPTY_CONFIG),
            layers,
            subject: None,
            artifact_type: Some(PACK_ARTIFACT_TYPE.to_string()),
            annotations: None,
        }
    }

    fn manifest_layer() -> OciDescriptor {
        descriptor(MANIFEST_MEDIA_TYPE, Some(MANIFEST_TITLE), b"{}")
    }

    fn component(title: &str) -> OciDescriptor {
        descriptor(COMPONENT_MEDIA_TYPE, Some(title), b"\0asm")
    }

    fn refusal(manifest: &OciImageManifest) -> String {
        let err = plan_pull(manifest, &RegistryOptions::default()).unwrap_err();
        format!("{err:#}")
    }

    #[test]
    fn accepts_a_well_formed_pack() {
        let manifest = pack_manifest(vec![
            manifest_layer(),
            descriptor(SIGNATURE_MEDIA_TYPE, Some(SIGNATURE_TITLE), b"{}"),
            component("rules/a.wasm"),
        ]);
        let plan = plan_pull(&manifest, &RegistryOptions::default()).unwrap();
        let kinds: Vec<_> = plan.iter().map(|layer| layer.kind).collect();
        assert_eq!(
            kinds,
            [
                LayerKind::Manifest,
                LayerKind::Signature,
                LayerKind::Component
            ]
        );
    }

    #[test]
    fn accepts_the_config_blob_variant() {
        let mut manifest = pack_manifest(vec![manifest_layer()]);
        manifest.artifact_type = None;
        manifest.config.media_type = PACK_ARTIFACT_TYPE.to_string();
        plan_pull(&manifest, &RegistryOptions::default()).unwrap();
    }

    #[test]
    fn refuses_foreign_artifacts() {
        let mut manifest = pack_manifest(vec![manifest_layer()]);
        manifest.artifact_type = Some("application/x-other".to_string());
        assert!(
            refusal(&manifest).contains("not a Vigil pack (artifact type application/x-other)")
        );

        manifest.artifact_type = None;
        assert!(refusal(&manifest).contains(EMPTY_CONFIG_MEDIA_TYPE));
    }

    #[test]
    fn refuses_unknown_layers_and_external_urls() {
        let manifest = pack_manifest(vec![
            manifest_layer(),
            descriptor("application/x-tar", Some("x.tar"), b"x"),
        ]);
        assert!(refusal(&manifest).contains("unknown media type application/x-tar"));

        let mut layer = component("rules/a.wasm");
        layer.urls = Some(vec!["https://elsewhere.example/blob".to_string()]);
        assert!(refusal(&pack_manifest(vec![manifest_layer(), layer])).contains("external URLs"));
    }

    #[test]
    fn refuses_bad_titles() {
        for title in [
            "",
            "/etc/passwd",
            "../x.wasm",
            "rules/../../x.wasm",
            "rules\\x.wasm",
            "rules//x.wasm",
            "./x.wasm",
            "rules/",
            "x\0.wasm",
        ] {
            let manifest = pack_manifest(vec![manifest_layer(), component(title)]);
            assert!(
                plan_pull(&manifest, &RegistryOptions::default()).is_err(),
                "{title:?}"
            );
        }
        let untitled = pack_manifest(vec![
            manifest_layer(),
            descriptor(COMPONENT_MEDIA_TYPE, None, b"x"),
        ]);
        assert!(refusal(&untitled).contains("has no org.opencontainers.image.title"));

        let duplicate = pack_manifest(vec![
            manifest_layer(),
            component("rules/a.wasm"),
            component("rules/a.wasm"),
        ]);
        assert!(refusal(&duplicate).contains("two files are named \"rules/a.wasm\""));

        let reserved = pack_manifest(vec![manifest_layer(), component(SIGNATURE_TITLE)]);
        assert!(refusal(&reserved).contains("is not a pack file"));
        let nested = pack_manifest(vec![manifest_layer(), component("rules/deep/x.wasm")]);
        assert!(refusal(&nested).contains("is not a pack file"));
    }

    #[test]
    fn refuses_wrong_layer_counts() {
        assert!(
            refusal(&pack_manifest(vec![component("rules/a.wasm")])).contains("0 manifest layers")
        );
        let mut second = manifest_layer();
        second.annotations = Some(BTreeMap::from([(
            ORG_OPENCONTAINERS_IMAGE_TITLE.to_string(),
            "other.json".to_string(),
        )]));
        assert!(refusal(&pack_manifest(vec![manifest_layer(), second])).contains("is named"));
    }

    #[test]
    fn refuses_bad_digests_and_sizes() {
        let mut layer = component("rules/a.wasm");
        layer.digest = "sha512:00".to_string();
        assert!(refusal(&pack_manifest(vec![manifest_layer(), layer])).contains("not a sha256"));

        let mut layer = component("rules/a.wasm");
        layer.digest = layer.digest.to_uppercase().replace("SHA256", "sha256");
        assert!(refusal(&pack_manifest(vec![manifest_layer(), layer])).contains("not a sha256"));

        let mut layer = component("rules/a.wasm");
        layer.size = -1;
        assert!(refusal(&pack_manifest(vec![manifest_layer(), layer])).contains("negative size"));

        let mut layer = component("rules/x.wasm");
        layer.size = 80 * MIB as i64;
        assert!(
            refusal(&pack_manifest(vec![manifest_layer(), layer]))
                .contains("blob rules/x.wasm is 80 MiB, more than the 64 MiB limit")
        );

        let layers = (0..5)
            .map(|i| {
                let mut layer = component(&format!("rules/{i}.wasm"));
                layer.size = 60 * MIB as i64;
                layer
            })
            .chain(std::iter::once(manifest_layer()))
            .collect();
        assert!(refusal(&pack_manifest(layers)).contains("more than the 256 MiB limit"));
    }

    #[test]
    fn push_refuses_empty_files_and_duplicate_paths() {
        let files = PackFiles {
            manifest: b"{}".to_vec(),
            signature: None,
            components: vec![("rules/a.wasm".into(), Vec::new())],
        };
        let err = push(
            "127.0.0.1:1/acme/pack:1",
            &files,
            &RegistryOptions::default(),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("file \"rules/a.wasm\" is empty"),
            "{err:#}"
        );

        let files = PackFiles {
            manifest: b"{}".to_vec(),
            signature: None,
            components: vec![
                ("rules/a.wasm".into(), b"1".to_vec()),
                ("rules/a.wasm".into(), b"2".to_vec()),
            ],
        };
        let err = push(
            "127.0.0.1:1/acme/pack:1",
            &files,
            &RegistryOptions::default(),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("two files are named"),
            "{err:#}"
        );
    }

    #[test]
    fn references_must_name_the_registry() {
        let err = pull("acme/pack:1.0", &RegistryOptions::default()).unwrap_err();
        assert!(format!("{err:#}").starts_with(
            "cannot pull acme/pack:1.0: the reference must start with the registry host"
        ));
        assert!(pull("Not A Reference", &RegistryOptions::default()).is_err());
    }

    #[test]
    fn debug_hides_the_password() {
        let options = RegistryOptions {
            basic_auth: Some(("user".into(), "hunter2".into())),
            ..RegistryOptions::default()
        };
        assert!(!format!("{options:?}").contains("hunter2"));
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(64 * MIB), "64 MiB");
        assert_eq!(size(MIB + MIB / 2), "1.5 MiB (1572864 bytes)");
        assert_eq!(size(12), "12 bytes");
    }
}
