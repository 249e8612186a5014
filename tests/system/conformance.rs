//! Walks the datamodel and calls every implicit message of every live class over the wire,
//! checking each result against the datamodel type.
use xapi_idl::model::{model, Implicit, MessageKind};
use xapi_idl::{Lifecycle, Qualifier, Type};
use xapi_system_tests::typecheck::check;
use xapi_system_tests::{s, Api, TestDaemon, Value};

/// A valid sample value of `ty` for map/set updates.
fn sample(ty: &Type) -> Option<Value> {
    let m = model();
    Some(match ty {
        Type::String => s("conformance"),
        Type::Int => Value::Int(7),
        Type::Float => Value::Double(0.5),
        Type::Bool => Value::Bool(true),
        Type::Ref(_) => s("OpaqueRef:NULL"),
        Type::Enum(e) => s(m.enums.get(e)?.first()?),
        Type::DateTime => Value::DateTime("20240131T09:05:00Z".into()),
        _ => return None,
    })
}

fn key_sample(ty: &Type) -> Option<String> {
    match sample(ty)? {
        Value::String(k) => Some(k),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// One object of each persisted class: an existing one, or one made with `create`.
fn object_of(api: &mut Api, class: &str) -> Option<String> {
    if class == "session" {
        return Some(api.session.clone());
    }
    if let Ok(Value::Array(refs)) = api.call(&format!("{class}.get_all"), vec![]) {
        if let Some(Value::String(r)) = refs.first() {
            return Some(r.clone());
        }
    }
    let create = model().message(&format!("{class}.create"))?;
    if !matches!(create.kind, MessageKind::Implicit(Implicit::Create))
        || create.lifecycle == Lifecycle::Removed
    {
        return None;
    }
    api.call(&create.wire, vec![Value::Struct(vec![])])
        .ok()?
        .as_str()
        .map(str::to_owned)
}

#[test]
fn every_implicit_message_of_every_live_class_answers_its_datamodel_type() {
    let m = model();
    let d = TestDaemon::start();
    let mut api = d.login();
    let mut failures = Vec::new();
    let mut calls = 0usize;
    for class in m
        .classes
        .iter()
        .filter(|c| c.persisted && c.lifecycle != Lifecycle::Removed)
    {
        let obj = object_of(&mut api, &class.name);
        for &mi in &class.messages {
            let msg = &m.messages[mi];
            let MessageKind::Implicit(kind) = msg.kind else {
                continue;
            };
            if msg.lifecycle == Lifecycle::Removed {
                continue;
            }
            let mut call = |api: &mut Api, args: Vec<Value>, expect: Option<&Type>| {
                calls += 1;
                match api.call(&msg.wire, args.clone()) {
                    Ok(v) => {
                        if let Some(ty) = expect {
                            if let Err(e) = check(m, ty, &v) {
                                failures.push(format!("{}: {e}", msg.wire));
                            }
                        }
                        Some(v)
                    }
                    Err(e) => {
                        failures.push(format!("{}({args:?}) failed: {e:?}", msg.wire));
                        None
                    }
                }
            };
            match kind {
                Implicit::GetAll | Implicit::GetAllRecords => {
                    call(&mut api, vec![], Some(&msg.result));
                }
                Implicit::GetAllWhere | Implicit::GetAllRecordsWhere => {
                    call(&mut api, vec![s("true")], Some(&msg.result));
                }
                Implicit::Create | Implicit::Destroy => {}
                _ => {
                    let Some(obj) = obj.clone() else { continue };
                    match kind {
                        Implicit::GetRecord => {
                            call(
                                &mut api,
                                vec![s(&obj)],
                                Some(&Type::Record(class.name.clone())),
                            );
                        }
                        Implicit::GetByUuid => {
                            if class.uuid_field.is_none() {
                                continue;
                            }
                            let uuid = api.ok(&format!("{}.get_uuid", class.name), vec![s(&obj)]);
                            if call(&mut api, vec![uuid], Some(&msg.result)) != Some(s(&obj)) {
                                failures.push(format!("{}: wrong object", msg.wire));
                            }
                        }
                        Implicit::GetByNameLabel => {
                            let label =
                                api.ok(&format!("{}.get_name_label", class.name), vec![s(&obj)]);
                            match call(&mut api, vec![label], Some(&msg.result)) {
                                Some(Value::Array(v)) if v.contains(&s(&obj)) => {}
                                other => {
                                    failures.push(format!("{}: {other:?} lacks {obj}", msg.wire))
                                }
                            }
                        }
                        Implicit::GetField(f) => {
                            call(&mut api, vec![s(&obj)], Some(&class.fields[f].ty));
                        }
                        Implicit::SetField(f) => {
                            let field = &class.fields[f];
                            if field.qualifier != Qualifier::Rw {
                                failures.push(format!("{}: setter on a non-RW field", msg.wire));
                                continue;
                            }
                            let current = api
                                .ok(&format!("{}.get_{}", class.name, field.name), vec![s(&obj)]);
                            call(&mut api, vec![s(&obj), current], None);
                        }
                        Implicit::AddToMap(f) | Implicit::RemoveFromMap(f) => {
                            let Type::Map(k, v) = &class.fields[f].ty else {
                                continue;
                            };
                            let (Some(key), Some(val)) = (key_sample(k), sample(v)) else {
                                continue;
                            };
                            if matches!(kind, Implicit::AddToMap(_)) {
                                call(&mut api, vec![s(&obj), s(&key), val], None);
                            } else {
                                call(&mut api, vec![s(&obj), s(&key)], None);
                            }
                        }
                        Implicit::AddToSet(f) | Implicit::RemoveFromSet(f) => {
                            let Type::Set(elem) = &class.fields[f].ty else {
                                continue;
                            };
                            let Some(val) = sample(elem) else { continue };
                            call(&mut api, vec![s(&obj), val], None);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    assert!(calls > 800, "only {calls} calls made");
    assert!(
        failures.is_empty(),
        "{} of {calls} calls failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
