//! The Heat snippet of a DU: a HOT template (`heat_template_version: 2018-08-31`) with an
//! `OS::Heat::AutoScalingGroup` of `OS::Zun::Container`s running the DU image. It only uses
//! properties Heat's resource schemas define (an unknown property fails `stack create`), so
//! ports are opened with an `OS::Neutron::SecurityGroup` (Zun containers have no port
//! property in Heat) and the flavor becomes Zun's `cpu`/`memory` when it is one of
//! OpenStack's default flavors, and a label otherwise.
//!
//! The YAML is built as a node tree and written by `saphyr`'s emitter, never pasted together
//! from strings, so any value (quotes, colons, newlines, `yes`, `0b1`) round-trips. Every
//! string value is double-quoted: Heat reads templates with PyYAML, a YAML 1.1 parser that
//! would turn some plain scalars (`on`, `0b1`, `1_000`) into booleans or numbers.
//! This module does not talk to Heat and does not validate against a live cloud.

use std::borrow::Cow;

use saphyr::{Mapping, Scalar, Yaml, YamlEmitter};

use super::du::DuManifest;
use super::ManifestError;

/// The HOT version written; `OS::Zun::Container` exists since Heat 9 (Pike is 9.0.0).
pub const HOT_VERSION: &str = "2018-08-31";

/// OpenStack's default Nova flavors as (name, vCPUs, MiB of memory), for Zun's `cpu`/`memory`.
const DEFAULT_FLAVORS: &[(&str, u32, u32)] = &[
    ("m1.tiny", 1, 512),
    ("m1.small", 1, 2048),
    ("m1.medium", 2, 4096),
    ("m1.large", 4, 8192),
    ("m1.xlarge", 8, 16384),
];

/// The HOT template for `du` (its `heat` field is ignored), deploying `image`.
pub fn template(du: &DuManifest, image: &str) -> Result<String, ManifestError> {
    let group = format!("{}_group", du.name);
    let security_group = format!("{}_security_group", du.name);

    let mut parameters = vec![(
        "image",
        map(vec![
            ("type", s("string")),
            ("description", s("The DU image to run")),
            ("default", s(image)),
        ]),
    )];
    // One parameter per declared service, passed to the app as SOLUM_SERVICE_<NAME>; it
    // defaults to empty so the stack can be created before the service exists.
    let service_params: Vec<(String, String)> = du
        .services
        .iter()
        .map(|svc| {
            let param = format!("service_{}", svc.name);
            let env = format!("SOLUM_SERVICE_{}", env_suffix(&svc.name));
            (param, env)
        })
        .collect();
    for (svc, (param, _)) in du.services.iter().zip(&service_params) {
        let description = format!(
            "Address of the {} service `{}` the app uses",
            svc.kind, svc.name
        );
        parameters.push((
            param.as_str(),
            map(vec![
                ("type", s("string")),
                ("description", s(&description)),
                ("default", s("")),
            ]),
        ));
    }

    let mut environment: Vec<(String, Yaml<'static>)> = du
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), s(v)))
        .collect();
    for (param, env) in &service_params {
        environment.push((env.clone(), map(vec![("get_param", s(param))])));
    }

    let mut labels = vec![("org.solum.du.name", s(&du.name))];
    let ports_label = du
        .ports
        .iter()
        .map(|p| format!("{}/{}", p.port, p.protocol.as_str()))
        .collect::<Vec<_>>()
        .join(",");
    if !ports_label.is_empty() {
        labels.push(("org.solum.du.ports", s(&ports_label)));
    }
    if let Some(url) = &du.url {
        labels.push(("org.solum.du.url", s(url)));
    }
    if let Some(flavor) = &du.flavor {
        labels.push(("org.solum.du.flavor", s(flavor)));
    }

    let mut container = vec![
        ("image", map(vec![("get_param", s("image"))])),
        ("workdir", s(&du.runtime.workdir)),
        ("environment", map_owned(environment)),
        ("labels", map(labels)),
    ];
    if !du.runtime.command.is_empty() {
        // Zun's `command` is one string, split with shell rules on the Zun side.
        container.push(("command", s(&shell_join(&du.runtime.command))));
    }
    if let Some((_, cpu, memory)) = du
        .flavor
        .as_deref()
        .and_then(|f| DEFAULT_FLAVORS.iter().find(|(name, ..)| *name == f))
    {
        container.push(("cpu", int(i64::from(*cpu))));
        container.push(("memory", int(i64::from(*memory))));
    }
    if !du.ports.is_empty() {
        container.push((
            "security_groups",
            Yaml::Sequence(vec![map(vec![("get_resource", s(&security_group))])]),
        ));
    }

    let mut resources = Vec::new();
    if !du.ports.is_empty() {
        let rules = du
            .ports
            .iter()
            .map(|p| {
                map(vec![
                    ("direction", s("ingress")),
                    ("protocol", s(p.protocol.as_str())),
                    ("port_range_min", int(p.port.into())),
                    ("port_range_max", int(p.port.into())),
                ])
            })
            .collect();
        let description = format!("Ports of {}", du.name);
        resources.push((
            security_group.clone(),
            map(vec![
                ("type", s("OS::Neutron::SecurityGroup")),
                (
                    "properties",
                    map(vec![
                        ("description", s(&description)),
                        ("rules", Yaml::Sequence(rules)),
                    ]),
                ),
            ]),
        ));
    }
    resources.push((
        group.clone(),
        map(vec![
            ("type", s("OS::Heat::AutoScalingGroup")),
            (
                "properties",
                map(vec![
                    ("min_size", int(du.scaling.min.into())),
                    ("max_size", int(du.scaling.max.into())),
                    (
                        "resource",
                        map(vec![
                            ("type", s("OS::Zun::Container")),
                            ("properties", map(container)),
                        ]),
                    ),
                ]),
            ),
        ]),
    ));

    let mut outputs = vec![
        (
            "group_id",
            map(vec![
                ("description", s("The scaling group")),
                ("value", map(vec![("get_resource", s(&group))])),
            ]),
        ),
        (
            "current_size",
            map(vec![
                ("description", s("Containers running now")),
                (
                    "value",
                    map(vec![(
                        "get_attr",
                        Yaml::Sequence(vec![s(&group), s("current_size")]),
                    )]),
                ),
            ]),
        ),
    ];
    if let Some(url) = &du.url {
        outputs.push((
            "url",
            map(vec![
                ("description", s("Where the app is served")),
                ("value", s(url)),
            ]),
        ));
    }

    let description = format!("Deployment unit {} built by solum-build", du.name);
    let doc = map(vec![
        ("heat_template_version", s(HOT_VERSION)),
        ("description", s(&description)),
        ("parameters", map(parameters)),
        ("resources", map_owned(resources)),
        ("outputs", map(outputs)),
    ]);
    emit(&doc).map_err(|source| ManifestError::HeatEmit {
        name: du.name.clone(),
        source,
    })
}

fn emit(doc: &Yaml<'_>) -> Result<String, saphyr::EmitError> {
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    emitter.quoted_value(true);
    emitter.dump(doc)?;
    // The emitter starts every document with `---`; a template file does not need it.
    let body = out.strip_prefix("---\n").unwrap_or(&out).to_string();
    Ok(body + "\n")
}

fn s(v: &str) -> Yaml<'static> {
    Yaml::Value(Scalar::String(Cow::Owned(v.to_string())))
}

fn int(v: i64) -> Yaml<'static> {
    Yaml::Value(Scalar::Integer(v))
}

fn map(entries: Vec<(&str, Yaml<'static>)>) -> Yaml<'static> {
    let mut m = Mapping::new();
    for (k, v) in entries {
        m.insert(s(k), v);
    }
    Yaml::Mapping(m)
}

fn map_owned(entries: Vec<(String, Yaml<'static>)>) -> Yaml<'static> {
    let mut m = Mapping::new();
    for (k, v) in entries {
        m.insert(s(&k), v);
    }
    Yaml::Mapping(m)
}

/// `db-main` → `DB_MAIN`, a valid environment name suffix.
fn env_suffix(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Join argv into one string that a POSIX shell (and Python's `shlex`) splits back into the
/// same words.
pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|word| {
            let safe = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
            if safe {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
