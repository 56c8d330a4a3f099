//! `vigil_host::pack::oci`: push and pull rule packs against a real
//! Docker registry 2.8 on loopback.

use std::collections::BTreeMap;

use oci_client::annotations::ORG_OPENCONTAINERS_IMAGE_TITLE;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use vigil_host::pack::PackFiles;
use vigil_host::pack::oci::{RegistryOptions, pull, push};
use vigil_test_support::registry::{RegistryGuard, start_registry, start_registry_with_htpasswd};

const MIB: usize = 1024 * 1024;

fn options(registry: &RegistryGuard) -> RegistryOptions {
    RegistryOptions {
        insecure: vec![registry.addr.clone()],
        ..RegistryOptions::default()
    }
}

/// Deterministic filler, different per seed, so blobs are distinct and not trivially compressible.
fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

fn sample_pack() -> PackFiles {
    PackFiles {
        manifest: br#"{"name":"acme","version":"1.0","rules":["rules/push-flood.wasm"]}"#.to_vec(),
        signature: Some(br#"{"alg":"ed25519","sig":"AAAA"}"#.to_vec()),
        components: vec![
            ("rules/push-flood.wasm".to_string(), bytes(1, 3000)),
            // Over oci-client's 4 MiB push chunk, so the chunked upload really takes two chunks.
            ("rules/big.wasm".to_string(), bytes(2, 5 * MIB)),
        ],
    }
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

fn error_text(err: anyhow::Error) -> String {
    let text = format!("{err:#}");
    // Shown with --nocapture, to read the messages operators will see.
    eprintln!("error: {text}");
    text
}

fn test_client(registry: &RegistryGuard) -> (Client, tokio::runtime::Runtime) {
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(vec![registry.addr.clone()]),
        ..ClientConfig::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (client, runtime)
}

/// The image manifest exactly as the registry serves it, with the digest it reports.
fn raw_manifest(registry: &RegistryGuard, reference: &str) -> (Vec<u8>, String) {
    let (client, runtime) = test_client(registry);
    let image: Reference = reference.parse().unwrap();
    runtime
        .block_on(client.pull_manifest_raw(
            &image,
            &RegistryAuth::Anonymous,
            &[OCI_IMAGE_MEDIA_TYPE],
        ))
        .unwrap()
}

/// Pushes an arbitrary manifest and blobs with oci-client directly, to play a foreign publisher.
fn raw_push(
    registry: &RegistryGuard,
    reference: &str,
    blobs: &[&[u8]],
    manifest: OciImageManifest,
) {
    let (client, runtime) = test_client(registry);
    let image: Reference = reference.parse().unwrap();
    runtime.block_on(async {
        client
            .store_auth_if_needed(image.resolve_registry(), &RegistryAuth::Anonymous)
            .await;
        for blob in blobs {
            client.push_blob(&image, blob, &sha256(blob)).await.unwrap();
        }
        client
            .push_manifest(&image, &manifest.into())
            .await
            .unwrap();
    });
}

fn layer(media_type: &str, title: &str, data: &[u8]) -> OciDescriptor {
    OciDescriptor {
        media_type: media_type.to_string(),
        digest: sha256(data),
        size: data.len() as i64,
        urls: None,
        annotations: Some(BTreeMap::from([(
            ORG_OPENCONTAINERS_IMAGE_TITLE.to_string(),
            title.to_string(),
        )])),
    }
}

#[test]
fn push_then_pull_by_tag_gives_identical_bytes() {
    let registry = start_registry();
    let reference = format!("{}/acme/pack:1.0", registry.addr);
    let pack = sample_pack();

    let digest = push(&reference, &pack, &options(&registry)).unwrap();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );

    let pulled = pull(&reference, &options(&registry)).unwrap();
    assert_eq!(pulled, pack);

    // What the registry stores: an OCI 1.1 artifact with the empty config, one titled layer
    // per file, under exactly the digest push returned.
    let (raw, stored_digest) = raw_manifest(&registry, &reference);
    assert_eq!(stored_digest, digest);
    assert_eq!(sha256(&raw), digest);
    let stored: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(stored["mediaType"], OCI_IMAGE_MEDIA_TYPE);
    assert_eq!(stored["artifactType"], "application/vnd.vigil.pack.v1+json");
    assert_eq!(
        stored["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(stored["config"]["size"], 2);
    let layers: Vec<(&str, &str)> = stored["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            (
                layer["mediaType"].as_str().unwrap(),
                layer["annotations"][ORG_OPENCONTAINERS_IMAGE_TITLE]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        layers,
        [
            (
                "application/vnd.vigil.pack.manifest.v1+json",
                "manifest.json"
            ),
            (
                "application/vnd.vigil.pack.signature.v1+json",
                "manifest.sig"
            ),
            (
                "application/vnd.vigil.rule.component.v1+wasm",
                "rules/push-flood.wasm"
            ),
            (
                "application/vnd.vigil.rule.component.v1+wasm",
                "rules/big.wasm"
            ),
        ]
    );

    // Nothing time-dependent goes into the manifest: the same pack pushes to the same digest.
    let again = push(
        &format!("{}/acme/pack:again", registry.addr),
        &pack,
        &options(&registry),
    );
    assert_eq!(again.unwrap(), digest);
}

#[test]
fn unsigned_pack_round_trips() {
    let registry = start_registry();
    let reference = format!("{}/acme/unsigned:1", registry.addr);
    let mut pack = PackFiles {
        signature: None,
        ..sample_pack()
    };
    // Two components with the same bytes share one blob (uploaded once) but stay two files.
    let copy = pack.components[0].1.clone();
    pack.components.push(("rules/copy.wasm".to_string(), copy));
    push(&reference, &pack, &options(&registry)).unwrap();
    assert_eq!(pull(&reference, &options(&registry)).unwrap(), pack);
}

#[test]
fn pull_by_the_digest_push_returned() {
    let registry = start_registry();
    let pack = sample_pack();
    let digest = push(
        &format!("{}/acme/pack:1.0", registry.addr),
        &pack,
        &options(&registry),
    )
    .unwrap();

    let by_digest = format!("{}/acme/pack@{digest}", registry.addr);
    assert_eq!(pull(&by_digest, &options(&registry)).unwrap(), pack);

    let unknown = format!("{}/acme/pack@sha256:{}", registry.addr, "0".repeat(64));
    let err = error_text(pull(&unknown, &options(&registry)).unwrap_err());
    assert!(err.contains("no such tag or digest"), "{err}");
}

#[test]
fn pulling_a_missing_tag_says_so() {
    let registry = start_registry();
    push(
        &format!("{}/acme/pack:1.0", registry.addr),
        &sample_pack(),
        &options(&registry),
    )
    .unwrap();

    let reference = format!("{}/acme/pack:9.9", registry.addr);
    let err = error_text(pull(&reference, &options(&registry)).unwrap_err());
    assert!(
        err.starts_with(&format!("cannot pull {reference}: ")),
        "{err}"
    );
    assert!(err.contains("no such tag or digest"), "{err}");

    // A repository nobody pushed to reads the same way to the operator.
    let reference = format!("{}/nobody/here:1", registry.addr);
    let err = error_text(pull(&reference, &options(&registry)).unwrap_err());
    assert!(err.contains("no such tag or digest"), "{err}");
}

#[test]
fn foreign_artifacts_are_refused() {
    let registry = start_registry();

    // A plain artifact of someone else's type, pushed the classic way (typed config blob).
    let reference = format!("{}/acme/other:1", registry.addr);
    let config = Config::new(
        b"{}".to_vec(),
        "application/vnd.acme.thing.config.v1+json".into(),
        None,
    );
    let data = b"not a pack".to_vec();
    let layers = [ImageLayer::new(
        data.clone(),
        "application/vnd.acme.thing.layer.v1+tar".into(),
        None,
    )];
    let manifest = OciImageManifest::build(&layers, &config, None);
    raw_push(&registry, &reference, &[&config.data, &data], manifest);
    let err = error_text(pull(&reference, &options(&registry)).unwrap_err());
    assert_eq!(
        err,
        format!(
            "cannot pull {reference}: the artifact is not a Vigil pack \
             (artifact type application/vnd.acme.thing.config.v1+json)"
        )
    );

    // Vigil's artifact type, but smuggling a layer of another media type.
    let reference = format!("{}/acme/smuggled:1", registry.addr);
    let pack_manifest = b"{}".to_vec();
    let manifest = OciImageManifest {
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
        artifact_type: Some("application/vnd.vigil.pack.v1+json".to_string()),
        config: OciDescriptor {
            media_type: "application/vnd.oci.empty.v1+json".to_string(),
            digest: sha256(b"{}"),
            size: 2,
            urls: None,
            annotations: None,
        },
        layers: vec![
            layer(
                "application/vnd.vigil.pack.manifest.v1+json",
                "manifest.json",
                &pack_manifest,
            ),
            layer("application/x-sh", "install.sh", &data),
        ],
        ..OciImageManifest::default()
    };
    raw_push(&registry, &reference, &[b"{}", &data], manifest);
    let err = error_text(pull(&reference, &options(&registry)).unwrap_err());
    assert!(
        err.ends_with("layer \"install.sh\" has unknown media type application/x-sh"),
        "{err}"
    );
}

#[test]
fn a_blob_longer_than_its_descriptor_is_cut_off() {
    let registry = start_registry();
    let reference = format!("{}/acme/liar:1", registry.addr);
    let component = bytes(3, 100_000);
    let mut short = layer(
        "application/vnd.vigil.rule.component.v1+wasm",
        "rules/liar.wasm",
        &component,
    );
    short.size = 1000;
    let manifest = OciImageManifest {
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
        artifact_type: Some("application/vnd.vigil.pack.v1+json".to_string()),
        config: OciDescriptor {
            media_type: "application/vnd.oci.empty.v1+json".to_string(),
            digest: sha256(b"{}"),
            size: 2,
            urls: None,
            annotations: None,
        },
        layers: vec![
            layer(
                "application/vnd.vigil.pack.manifest.v1+json",
                "manifest.json",
                b"{}",
            ),
            short,
        ],
        ..OciImageManifest::default()
    };
    // Docker's registry only checks that the blobs exist, not the sizes the manifest declares.
    raw_push(&registry, &reference, &[b"{}", &component], manifest);
    let err = error_text(pull(&reference, &options(&registry)).unwrap_err());
    assert!(
        err.ends_with("blob rules/liar.wasm is larger than the 1000 bytes its layer declares"),
        "{err}"
    );
}

#[test]
fn size_limits_refuse_oversized_packs() {
    let registry = start_registry();
    let reference = format!("{}/acme/pack:big", registry.addr);
    let pack = PackFiles {
        manifest: b"{}".to_vec(),
        signature: None,
        components: vec![
            ("rules/big.wasm".to_string(), bytes(4, 2 * MIB)),
            ("rules/small.wasm".to_string(), bytes(5, MIB / 2)),
        ],
    };
    push(&reference, &pack, &options(&registry)).unwrap();

    let per_blob = RegistryOptions {
        max_blob_bytes: MIB as u64,
        ..options(&registry)
    };
    let err = error_text(pull(&reference, &per_blob).unwrap_err());
    assert_eq!(
        err,
        format!("cannot pull {reference}: blob rules/big.wasm is 2 MiB, more than the 1 MiB limit")
    );

    let total = RegistryOptions {
        max_total_bytes: 2 * MIB as u64,
        ..options(&registry)
    };
    let err = error_text(pull(&reference, &total).unwrap_err());
    assert!(err.contains("the pack is 2.5 MiB"), "{err}");
    assert!(err.ends_with("more than the 2 MiB limit"), "{err}");

    // Push holds packs to the same limits, so it never publishes what pull would refuse.
    let err = error_text(push(&reference, &pack, &per_blob).unwrap_err());
    assert!(err.contains("more than the 1 MiB limit"), "{err}");
}

/// `htpasswd -nbB -C 4 vigil 's3cret-pw'` (bcrypt, low cost to keep the test fast).
const HTPASSWD: &str = "vigil:$2y$04$u8iUgaJuWQRRqFoyz2ifDuH/gp4mcZmUB3pPYzWkMlcxRlrpz4fH6";

#[test]
fn basic_auth_is_used_and_never_shown() {
    let registry = start_registry_with_htpasswd(HTPASSWD);
    let reference = format!("{}/acme/private:1", registry.addr);
    let with = |user: &str, password: &str| RegistryOptions {
        basic_auth: Some((user.to_string(), password.to_string())),
        ..options(&registry)
    };
    let pack = sample_pack();
    push(&reference, &pack, &with("vigil", "s3cret-pw")).unwrap();
    assert_eq!(pull(&reference, &with("vigil", "s3cret-pw")).unwrap(), pack);

    let err = error_text(pull(&reference, &options(&registry)).unwrap_err());
    assert!(err.contains("credentials"), "{err}");

    let err = error_text(pull(&reference, &with("vigil", "wrong-pw-123")).unwrap_err());
    assert!(err.contains("credentials"), "{err}");
    assert!(!err.contains("wrong-pw-123"), "{err}");

    let err = error_text(push(&reference, &pack, &with("vigil", "wrong-pw-123")).unwrap_err());
    assert!(
        err.starts_with(&format!("cannot push {reference}: ")),
        "{err}"
    );
    assert!(err.contains("credentials"), "{err}");
    assert!(!err.contains("wrong-pw-123"), "{err}");
}

#[test]
fn plain_http_is_only_used_when_asked() {
    let registry = start_registry();
    let reference = format!("{}/acme/pack:1.0", registry.addr);
    // Without `insecure`, the client speaks TLS to the plain-HTTP registry and fails.
    let err = error_text(pull(&reference, &RegistryOptions::default()).unwrap_err());
    assert!(
        err.starts_with(&format!("cannot pull {reference}: ")),
        "{err}"
    );
    assert!(err.contains("list it as insecure"), "{err}");
}
