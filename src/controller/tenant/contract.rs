//! The data-plane contract (docs/data-plane.md) held to the code that builds the
//! senders and the data-plane Jobs: the document's tables are parsed, and every
//! argument, environment variable, mount and readiness setting Herald passes must be
//! listed there, and everything listed there must be passed. Test-only: the document is
//! read at compile time, nothing of it ships in the binary.

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::Value;

    use crate::api::v1alpha1::Right;
    use crate::config::OperatorConfig;
    use crate::controller::dsr::decide as dsr;
    use crate::controller::tenant::bindings::Mount;
    use crate::controller::tenant::build::{Inputs, children};
    use crate::controller::tenant::data_plane::DataPlane;
    use crate::controller::tenant::decide::{decide, tests as fixtures};
    use crate::controller::tenant::erasure::plan;
    use crate::retention::Periods;

    const DOC: &str = include_str!("../../../docs/data-plane.md");

    /// The rows of the table whose header row has exactly `header`'s cells, with
    /// backticks removed. Panics (fails the test) when the document has no such table.
    fn table(header: &[&str]) -> Vec<Vec<String>> {
        let cells = |line: &str| -> Vec<String> {
            line.trim()
                .trim_start_matches('|')
                .trim_end_matches('|')
                .split('|')
                .map(|c| c.trim().replace('`', ""))
                .collect()
        };
        let mut lines = DOC
            .lines()
            .skip_while(|l| !(l.trim_start().starts_with('|') && cells(l) == header));
        assert!(
            lines.next().is_some(),
            "docs/data-plane.md has no table {header:?}"
        );
        lines
            .skip(1) // the |---| row
            .take_while(|l| l.trim_start().starts_with('|'))
            .map(cells)
            .collect()
    }

    /// A container as the contract sees it.
    struct Seen {
        command: String,
        /// (flag, value) in order; a bare flag has an empty value.
        flags: Vec<(String, String)>,
        env: Vec<String>,
        /// (path, source kind, read-only).
        mounts: Vec<(String, String, bool)>,
    }

    /// What `pod` runs, with each channel directory written `<channel>`.
    fn seen(pod: &Value, channels: &[&str]) -> Seen {
        let c = &pod["containers"][0];
        assert!(c.get("command").is_none(), "Herald never sets command");
        let args: Vec<String> = c["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("string arg").to_owned())
            .collect();
        let (command, rest) = args.split_first().expect("a command");
        let mut flags = Vec::new();
        let mut it = rest.iter().peekable();
        while let Some(flag) = it.next() {
            assert!(flag.starts_with("--"), "{flag}: not a flag in {args:?}");
            let value = match it.peek() {
                Some(v) if !v.starts_with("--") => it.next().cloned().unwrap_or_default(),
                _ => String::new(),
            };
            flags.push((flag.clone(), value));
        }
        let env = c["env"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|v| v["name"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let volumes: BTreeMap<String, &Value> = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .map(|v| (v["name"].as_str().unwrap_or_default().to_owned(), v))
            .collect();
        let mounts = c["volumeMounts"]
            .as_array()
            .expect("volumeMounts")
            .iter()
            .map(|m| {
                let mut path = m["mountPath"].as_str().unwrap_or_default().to_owned();
                for ch in channels {
                    path = path.replace(&format!("/credentials/{ch}"), "/credentials/<channel>");
                }
                let volume = volumes[m["name"].as_str().unwrap_or_default()];
                let kind = ["configMap", "secret", "emptyDir"]
                    .into_iter()
                    .find(|k| volume.get(*k).is_some())
                    .unwrap_or("other");
                (path, kind.to_owned(), m["readOnly"] == true)
            })
            .collect();
        Seen {
            command: command.clone(),
            flags,
            env,
            mounts,
        }
    }

    /// Every container Herald builds, in every variant that passes other arguments.
    fn everything() -> (Vec<Seen>, Value) {
        let tenant = fixtures::tenant(fixtures::ACTIVE);
        let config = OperatorConfig::load(None).unwrap();
        let decision = decide(
            &tenant,
            &config,
            Periods::default(),
            true,
            k8s_openapi::jiff::Timestamp::now(),
        );
        let mounts = [
            Mount {
                channel: "whatsapp".into(),
                version: 3,
                secret: "herald-cred-whatsapp-v3".into(),
            },
            Mount {
                channel: "sms".into(),
                version: 1,
                secret: "herald-cred-sms-v1".into(),
            },
        ];
        let c = children(&Inputs {
            tenant: &tenant,
            decision: &decision,
            config: &config,
            mounts: &mounts,
        })
        .unwrap();
        let deployment = serde_json::to_value(&c.deployment).unwrap();
        let sender_pod = deployment["spec"]["template"]["spec"].clone();
        let channels = ["whatsapp", "sms"];
        let mut all = vec![seen(&sender_pod, &channels)];
        for job in &c.purge_jobs {
            let j = serde_json::to_value(job).unwrap();
            all.push(seen(
                &j["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                &[],
            ));
        }
        let dp: &DataPlane = &c.data_plane;
        let url = "https://export.acme.example/up";
        all.push(seen(
            &dp.erasure_pod(&plan::erase_args(
                "acme",
                &["platform".into(), "sms".into()],
            )),
            &[],
        ));
        all.push(seen(&dp.erasure_pod(&plan::export_args("acme", url)), &[]));
        for right in [Right::Access, Right::Erasure, Right::Portability] {
            all.push(seen(
                &dp.dsr_pod(&dsr::job_args("acme", right, Some(url)), "herald-dsr-x"),
                &[],
            ));
        }
        (all, sender_pod)
    }

    #[test]
    fn the_commands_are_the_documented_ones() {
        let (all, _) = everything();
        let code: BTreeSet<String> = all.iter().map(|s| s.command.clone()).collect();
        let doc: BTreeSet<String> = table(&["command", "Kubernetes object", "when"])
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        assert_eq!(code, doc);
    }

    #[test]
    fn every_argument_is_documented_in_order_and_nothing_documented_is_missing() {
        let (all, _) = everything();
        let rows = table(&["command", "argument", "value", "meaning"]);
        let mut doc: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for r in &rows {
            doc.entry(r[0].clone())
                .or_default()
                .push((r[1].clone(), r[2].clone()));
        }
        let mut passed: BTreeSet<(String, String)> = BTreeSet::new();
        for s in &all {
            let documented = doc
                .get(&s.command)
                .unwrap_or_else(|| panic!("{}: not documented", s.command));
            // The code's flags, repeats collapsed, are a subsequence of the document's:
            // the same order, optional ones (dsr's --destination) may be absent.
            let mut at = 0;
            let mut last: Option<&str> = None;
            for (flag, value) in &s.flags {
                passed.insert((s.command.clone(), flag.clone()));
                if last == Some(flag.as_str()) {
                    let (_, meaning) = rows
                        .iter()
                        .find(|r| r[0] == s.command && &r[1] == flag)
                        .map(|r| (0, r[3].clone()))
                        .unwrap_or_default();
                    assert!(meaning.contains("repeated"), "{} {flag} repeats", s.command);
                    continue;
                }
                last = Some(flag);
                let offset = documented[at..]
                    .iter()
                    .position(|(f, _)| f == flag)
                    .unwrap_or_else(|| {
                        panic!(
                            "{} {flag}: not documented (or out of order) in {documented:?}",
                            s.command
                        )
                    });
                at += offset;
                let want = &documented[at].1;
                let placeholder = want.starts_with('<') && want.ends_with('>');
                assert!(
                    placeholder || want == value,
                    "{} {flag} {value}: the document says {want}",
                    s.command
                );
                at += 1;
            }
        }
        let documented: BTreeSet<(String, String)> = rows
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect();
        assert_eq!(
            passed, documented,
            "documented but never passed, or the reverse"
        );
    }

    #[test]
    fn herald_sets_exactly_the_documented_environment() {
        let (all, _) = everything();
        let code: BTreeSet<(String, String)> = all
            .iter()
            .flat_map(|s| s.env.iter().map(|e| (s.command.clone(), e.clone())))
            .collect();
        let doc: BTreeSet<(String, String)> = table(&["command", "variable", "value"])
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect();
        assert_eq!(code, doc);
    }

    #[test]
    fn every_mount_is_documented_and_nothing_documented_is_missing() {
        let (all, _) = everything();
        let kind_word = |kind: &str| match kind {
            "configMap" => "ConfigMap",
            "secret" => "Secret",
            "emptyDir" => "emptyDir",
            _ => "?",
        };
        let code: BTreeSet<(String, String, String, bool)> = all
            .iter()
            .flat_map(|s| {
                s.mounts
                    .iter()
                    .map(|(p, k, ro)| (s.command.clone(), p.clone(), kind_word(k).to_owned(), *ro))
            })
            .collect();
        let doc: BTreeSet<(String, String, String, bool)> =
            table(&["command", "path", "source", "read-only"])
                .into_iter()
                .map(|r| {
                    let kind = r[2]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .trim_end_matches(',')
                        .to_owned();
                    (r[0].clone(), r[1].clone(), kind, r[3] == "yes")
                })
                .collect();
        assert_eq!(code, doc);
    }

    #[test]
    fn the_sender_is_probed_where_the_document_says() {
        let (_, pod) = everything();
        let probe = &pod["containers"][0]["readinessProbe"]["httpGet"];
        let rows: BTreeMap<String, String> = table(&["readiness", "value"])
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect();
        assert_eq!(probe["path"].as_str(), Some(rows["path"].as_str()));
        assert_eq!(probe["port"].to_string(), rows["port"]);
    }

    #[test]
    fn the_dsr_answers_are_the_documented_exit_codes() {
        let rows = table(&["command", "code", "meaning"]);
        let code_of = |outcome: &str| {
            rows.iter()
                .find(|r| r[0] == "dsr" && r[2].starts_with(outcome))
                .map(|r| r[1].clone())
                .unwrap_or_else(|| panic!("no dsr row for {outcome}"))
        };
        assert_eq!(code_of("Fulfilled"), "0");
        assert_eq!(code_of("NothingHeld"), dsr::EXIT_NOTHING_HELD.to_string());
        assert_eq!(
            code_of("SubjectNotIdentified"),
            dsr::EXIT_NOT_IDENTIFIED.to_string()
        );
    }

    #[test]
    fn the_purge_time_limits_are_the_documented_ones() {
        let tenant = fixtures::tenant(fixtures::ACTIVE);
        let config = OperatorConfig::load(None).unwrap();
        let decision = decide(
            &tenant,
            &config,
            Periods::default(),
            true,
            k8s_openapi::jiff::Timestamp::now(),
        );
        let c = children(&Inputs {
            tenant: &tenant,
            decision: &decision,
            config: &config,
            mounts: &[],
        })
        .unwrap();
        let j = serde_json::to_value(&c.purge_jobs[0]).unwrap();
        let rows = table(&["command", "retries", "time limit"]);
        let purge = rows.iter().find(|r| r[0] == "purge").expect("purge row");
        let spec = &j["spec"]["jobTemplate"]["spec"];
        assert!(purge[1].contains(&format!("backoffLimit: {}", spec["backoffLimit"])));
        assert!(purge[2].contains(&format!(
            "activeDeadlineSeconds: {}",
            spec["activeDeadlineSeconds"]
        )));
        assert!(purge[2].contains(&format!(
            "startingDeadlineSeconds: {}",
            j["spec"]["startingDeadlineSeconds"]
        )));
    }
}
