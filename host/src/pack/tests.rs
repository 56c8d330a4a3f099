//! Pack files, signatures and the installed-packs directory, without
//! loading components (the CLI tests load real ones).

use super::installed::{PacksDir, diff};
use super::*;
use crate::audit::keygen;

struct Keys {
    _dir: tempfile::TempDir,
    signer: AuditSigner,
    public: PublicKey,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let made = keygen(&dir.path().join("k.pem")).unwrap();
    Keys {
        signer: AuditSigner::load_private(&made.private_key).unwrap(),
        public: PublicKey::load(&made.public_key).unwrap(),
        _dir: dir,
    }
}

fn pack(version: &str, actions: &[&str]) -> PackFiles {
    let wasm = b"\0asm not really a component".to_vec();
    let m = Manifest {
        schema: manifest::SCHEMA.into(),
        name: "acme-mfa".into(),
        version: version.into(),
        publisher: "Acme".into(),
        description: String::new(),
        min_host_version: "0.1.0".into(),
        rules: vec![ManifestRule {
            id: "acme-flood".into(),
            version: version.into(),
            description: String::new(),
            wit: "0.3.0".into(),
            file: "rules/acme-flood.wasm".into(),
            sha256: sha256_hex(&wasm),
            size: wasm.len() as u64,
            subscribes: vec!["user.mfa.*".into()],
            actions: actions.iter().map(|a| a.to_string()).collect(),
            partition: "actor".into(),
            config: Default::default(),
            docs: String::new(),
        }],
    };
    PackFiles {
        manifest: m.to_bytes(),
        signature: None,
        components: vec![("rules/acme-flood.wasm".into(), wasm)],
    }
}

fn trust(keys: &[&PublicKey]) -> Trust {
    Trust {
        keys: keys.iter().map(|k| (*k).clone()).collect(),
        allow_unsigned: false,
    }
}

fn refusal(files: &PackFiles, trust: &Trust) -> String {
    format!("{:#}", verify(files.clone(), trust).unwrap_err())
}

#[test]
fn each_check_fails_closed_naming_itself() {
    let k = keys();
    let other = keys();
    let mut files = pack("1.0.0", &["escalate"]);
    assert!(refusal(&files, &trust(&[&k.public])).contains("is not signed"));
    sign(&mut files, &k.signer).unwrap();
    let ok = verify(files.clone(), &trust(&[&k.public])).unwrap();
    assert_eq!(ok.signer, Signer::Key(k.public.key_id().to_owned()));

    // Unknown key.
    let err = refusal(&files, &trust(&[&other.public]));
    assert!(err.contains("which is not trusted"), "{err}");
    // Rotation: the old key among several.
    verify(files.clone(), &trust(&[&other.public, &k.public])).unwrap();

    // One byte of a component.
    let mut tampered = files.clone();
    tampered.components[0].1[3] ^= 1;
    let err = refusal(&tampered, &trust(&[&k.public]));
    assert!(
        err.contains("rules/acme-flood.wasm has sha256") && err.contains("altered"),
        "{err}"
    );

    // The manifest (one byte of a field the signature covers).
    let mut tampered = files.clone();
    let text = String::from_utf8(tampered.manifest.clone()).unwrap();
    tampered.manifest = text.replace("escalate", "suspend-user").into_bytes();
    let err = refusal(&tampered, &trust(&[&k.public]));
    assert!(err.contains("altered after signing"), "{err}");

    // A forged signature over the right digest.
    let mut forged = files.clone();
    let mut sig: SignatureFile =
        serde_json::from_slice(forged.signature.as_ref().unwrap()).unwrap();
    let mut bytes = hex::decode(&sig.signature).unwrap();
    bytes[0] ^= 1;
    sig.signature = hex::encode(bytes);
    forged.signature = Some(serde_json::to_vec(&sig).unwrap());
    let err = refusal(&forged, &trust(&[&k.public]));
    assert!(err.contains("does not verify"), "{err}");

    // A component the manifest does not name, or one missing.
    let mut extra = files.clone();
    extra.components.push(("rules/other.wasm".into(), vec![1]));
    assert!(refusal(&extra, &trust(&[&k.public])).contains("not named by the manifest"));
    let mut missing = files.clone();
    missing.components.clear();
    assert!(refusal(&missing, &trust(&[&k.public])).contains("is missing"));

    // allow_unsigned admits only the unsigned pack, not a bad signature.
    let lax = Trust {
        keys: vec![],
        allow_unsigned: true,
    };
    assert_eq!(
        verify(pack("1.0.0", &[]), &lax).unwrap().signer,
        Signer::Unsigned
    );
    assert!(refusal(&files, &lax).contains("not trusted"));
}

#[test]
fn directories_and_vpack_files_hold_the_same_pack() {
    let k = keys();
    let mut files = pack("1.0.0", &["escalate"]);
    sign(&mut files, &k.signer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let as_dir = dir.path().join("out");
    files.write(&as_dir).unwrap();
    assert_eq!(PackFiles::read(&as_dir).unwrap(), files);
    let vpack = dir.path().join("acme.vpack");
    files.write(&vpack).unwrap();
    assert_eq!(PackFiles::read(&vpack).unwrap(), files);
    // The same pack gives the same bytes.
    let first = std::fs::read(&vpack).unwrap();
    files.write(&vpack).unwrap();
    assert_eq!(std::fs::read(&vpack).unwrap(), first);

    // Anything but the pack's own files is refused: a link, a stray file.
    let archive = |kind: tar::EntryType, name: &str| {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(0);
        header.set_mode(0o644);
        header.set_entry_type(kind);
        if kind == tar::EntryType::Symlink {
            header.set_link_name("/etc/passwd").unwrap();
        }
        builder.append_data(&mut header, name, &[][..]).unwrap();
        let path = dir.path().join("evil.vpack");
        std::fs::write(&path, builder.into_inner().unwrap()).unwrap();
        format!("{:#}", PackFiles::read(&path).unwrap_err())
    };
    let err = archive(tar::EntryType::Symlink, "rules/acme-flood.wasm");
    assert!(err.contains("not a regular file"), "{err}");
    let err = archive(tar::EntryType::Regular, "notes.txt");
    assert!(err.contains("is not a pack file"), "{err}");

    // A name that climbs out of the pack (the tar crate will not write
    // one, so the header's name bytes are set by hand).
    let mut header = tar::Header::new_ustar();
    header.set_size(1);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    let name = b"rules/../../evil.wasm";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &[0u8][..]).unwrap();
    let path = dir.path().join("climb.vpack");
    std::fs::write(&path, builder.into_inner().unwrap()).unwrap();
    let err = format!("{:#}", PackFiles::read(&path).unwrap_err());
    assert!(err.contains("is not a pack file"), "{err}");
}

#[test]
fn install_upgrade_holds_new_kinds_and_rolls_back() {
    let k = keys();
    let t = trust(&[&k.public]);
    let root = tempfile::tempdir().unwrap();
    let packs = PacksDir::new(root.path());

    let mut v1 = pack("1.0.0", &["escalate"]);
    sign(&mut v1, &k.signer).unwrap();
    let out = packs.install(&verify(v1.clone(), &t).unwrap()).unwrap();
    assert!(out.previous.is_none() && out.held.is_empty());
    assert_eq!(packs.names().unwrap(), vec!["acme-mfa"]);

    let mut v2 = pack("1.1.0", &["escalate", "suspend-user"]);
    sign(&mut v2, &k.signer).unwrap();
    let out = packs.install(&verify(v2.clone(), &t).unwrap()).unwrap();
    let previous = out.previous.unwrap();
    assert_eq!(previous.version, "1.0.0");
    assert_eq!(
        out.held.get("acme-flood").unwrap(),
        &vec![crate::model::ActionKind::SuspendUser]
    );
    let lines = diff(&previous, &Manifest::parse(&v2.manifest).unwrap());
    assert!(
        lines
            .iter()
            .any(|l| l.contains("+ acme-flood may request suspend-user")),
        "{lines:?}"
    );
    let loaded = packs.load("acme-mfa", &t).unwrap();
    assert_eq!(loaded.pack.manifest.version, "1.1.0");
    assert!(loaded.held.contains_key("acme-flood"));

    // The same version with other bytes is refused.
    let mut v2b = pack("1.1.0", &["escalate", "suspend-user", "revoke-sessions"]);
    sign(&mut v2b, &k.signer).unwrap();
    let err = format!(
        "{:#}",
        packs
            .install(&verify(v2b.clone(), &t).unwrap())
            .unwrap_err()
    );
    assert!(
        err.contains("already installed with a different manifest"),
        "{err}"
    );

    // Rollback, then accept clears what was held.
    assert_eq!(
        packs.rollback("acme-mfa", &t).unwrap(),
        ("1.1.0".to_owned(), "1.0.0".to_owned())
    );
    assert_eq!(
        packs.load("acme-mfa", &t).unwrap().pack.manifest.version,
        "1.0.0"
    );
    assert!(packs.rollback("acme-mfa", &t).is_err());
    packs.install(&verify(v2.clone(), &t).unwrap()).unwrap();
    assert!(!packs.accept("acme-mfa", &t).unwrap().is_empty());
    assert!(packs.load("acme-mfa", &t).unwrap().held.is_empty());

    // Installed files are checked again at load.
    let component = root.path().join("acme-mfa/1.1.0/rules/acme-flood.wasm");
    let mut bytes = std::fs::read(&component).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&component, bytes).unwrap();
    let err = format!("{:#}", packs.load("acme-mfa", &t).unwrap_err());
    assert!(err.contains("was altered"), "{err}");

    let err = format!("{:#}", packs.remove("acme-mfa", Some("1.1.0")).unwrap_err());
    assert!(err.contains("current version"), "{err}");
    packs.remove("acme-mfa", Some("1.0.0")).unwrap();
    packs.remove("acme-mfa", None).unwrap();
    assert!(packs.names().unwrap().is_empty());
}
