//! DDL statements read from a binlog, parsed with `sqlparser`'s MySQL dialect:
//! * which tables a statement renamed (`RENAME TABLE a TO b, c TO d`, `ALTER TABLE a
//!   RENAME [TO|AS] b`): the journal records this zone's renames;
//! * which columns a statement added (with a literal default) or dropped
//!   ([`column_changes`]): the journal records the columns dropped in its zone, the
//!   applier the defaults of the columns an origin zone added, to tell a row image
//!   with a column this zone lacks that loses nothing from one that must wait.
//!
//! * which tables a statement truncated ([`truncated`]): the journal records this
//!   zone's TRUNCATEs, so late older changes from other zones do not refill them.
//!
//! A statement it cannot parse changes nothing it knows of (and is logged): the
//! applier then waits, by name, for the missing table or column.

use sqlparser::ast::{
    AlterTableOperation, ColumnOption, Expr, ObjectName, ObjectType, RenameTableNameKind, Statement, Value as SqlValue,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

/// A table renamed by a statement: database, old name, new name (same database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub db: String,
    pub from: String,
    pub to: String,
}

/// The renames in `sql`, run with default database `db`. A rename into another
/// database is not a rename within a replicated database and is left out.
pub fn renames(db: &str, sql: &str) -> Result<Vec<Rename>, String> {
    // only worth parsing when it can rename
    let upper = sql.to_ascii_uppercase();
    if !upper.contains("RENAME") {
        return Ok(Vec::new());
    }
    let statements = Parser::parse_sql(&MySqlDialect {}, sql).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for st in statements {
        match st {
            Statement::RenameTable(pairs) => {
                for p in pairs {
                    out.extend(rename(db, &p.old_name, &p.new_name));
                }
            }
            Statement::AlterTable(at) => {
                for op in &at.operations {
                    if let AlterTableOperation::RenameTable {
                        table_name: RenameTableNameKind::To(to) | RenameTableNameKind::As(to),
                    } = op
                    {
                        out.extend(rename(db, &at.name, to));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A column a statement added or dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnChange {
    /// Added; `default`: its literal default as text (a number's digits, a string's
    /// characters), `None` when it has none, NULL, or an expression.
    Added {
        db: String,
        tbl: String,
        column: String,
        default: Option<String>,
    },
    Dropped {
        db: String,
        tbl: String,
        column: String,
    },
}

/// The columns `ALTER TABLE` statements in `sql` (default database `db`) add or drop
/// (`CHANGE old new` is a drop of `old` and an add of `new` when the names differ).
pub fn column_changes(db: &str, sql: &str) -> Result<Vec<ColumnChange>, String> {
    let upper = sql.to_ascii_uppercase();
    if !upper.contains("ALTER") || !(upper.contains("ADD") || upper.contains("DROP") || upper.contains("CHANGE")) {
        return Ok(Vec::new());
    }
    let statements = Parser::parse_sql(&MySqlDialect {}, sql).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for st in statements {
        let Statement::AlterTable(at) = st else { continue };
        let Some((d, t)) = parts(db, &at.name) else { continue };
        let dropped = |c: &str| ColumnChange::Dropped {
            db: d.clone(),
            tbl: t.clone(),
            column: c.to_string(),
        };
        for op in &at.operations {
            match op {
                AlterTableOperation::AddColumn { column_def, .. } => out.push(ColumnChange::Added {
                    db: d.clone(),
                    tbl: t.clone(),
                    column: column_def.name.value.clone(),
                    default: column_def.options.iter().find_map(|o| literal_default(&o.option)),
                }),
                AlterTableOperation::DropColumn { column_names, .. } => {
                    out.extend(column_names.iter().map(|c| dropped(&c.value)));
                }
                AlterTableOperation::ChangeColumn {
                    old_name,
                    new_name,
                    options,
                    ..
                } if old_name.value != new_name.value => {
                    out.push(dropped(&old_name.value));
                    out.push(ColumnChange::Added {
                        db: d.clone(),
                        tbl: t.clone(),
                        column: new_name.value.clone(),
                        default: options.iter().find_map(literal_default),
                    });
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The text of a literal `DEFAULT` (a number or a string), if `o` is one.
fn literal_default(o: &ColumnOption) -> Option<String> {
    let ColumnOption::Default(e) = o else { return None };
    let v = match e {
        Expr::Value(v) => &v.value,
        Expr::UnaryOp { op, expr } => {
            let Expr::Value(v) = &**expr else { return None };
            let SqlValue::Number(n, _) = &v.value else { return None };
            return Some(format!("{op}{n}"));
        }
        _ => return None,
    };
    match v {
        SqlValue::Number(n, _) => Some(n.to_string()),
        SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The tables (database, table) `TRUNCATE [TABLE]` statements in `sql` empty.
pub fn truncated(db: &str, sql: &str) -> Result<Vec<(String, String)>, String> {
    if !sql.to_ascii_uppercase().contains("TRUNCATE") {
        return Ok(Vec::new());
    }
    let statements = Parser::parse_sql(&MySqlDialect {}, sql).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for st in statements {
        if let Statement::Truncate(t) = st {
            out.extend(t.table_names.iter().filter_map(|n| parts(db, &n.name)));
        }
    }
    Ok(out)
}

/// What a statement of the binlog is, for the DDL policy (`[replication.ddl_home]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdlKind {
    /// Changes a table's shape without losing data: CREATE TABLE/INDEX, ALTER TABLE
    /// (no DROP COLUMN), RENAME, DROP INDEX. Replicated from the home zone.
    Schema,
    /// Loses data: DROP TABLE/DATABASE/VIEW, TRUNCATE, ALTER TABLE … DROP COLUMN.
    /// Never replicated automatically.
    Destructive,
    /// Anything else (grants, users, routines, statements it cannot parse).
    Other,
}

/// A DDL statement: its kind and the databases of the tables it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ddl {
    pub kind: DdlKind,
    pub databases: Vec<String>,
}

/// Classifies `sql`, run with default database `db`.
pub fn classify(db: &str, sql: &str) -> Ddl {
    let other = Ddl {
        kind: DdlKind::Other,
        databases: Vec::new(),
    };
    let Ok(statements) = Parser::parse_sql(&MySqlDialect {}, sql) else {
        return other;
    };
    let mut kind = DdlKind::Other;
    let mut names: Vec<ObjectName> = Vec::new();
    let mut worst = |k: DdlKind| {
        kind = match (kind, k) {
            (DdlKind::Destructive, _) | (_, DdlKind::Destructive) => DdlKind::Destructive,
            (DdlKind::Schema, _) | (_, DdlKind::Schema) => DdlKind::Schema,
            _ => DdlKind::Other,
        }
    };
    for st in statements {
        match st {
            Statement::CreateTable(c) => {
                worst(DdlKind::Schema);
                names.push(c.name);
            }
            Statement::CreateIndex(c) => {
                worst(DdlKind::Schema);
                names.push(c.table_name);
            }
            Statement::RenameTable(pairs) => {
                worst(DdlKind::Schema);
                names.extend(pairs.into_iter().flat_map(|p| [p.old_name, p.new_name]));
            }
            Statement::AlterTable(at) => {
                let drops = at
                    .operations
                    .iter()
                    .any(|op| matches!(op, AlterTableOperation::DropColumn { .. }));
                worst(if drops { DdlKind::Destructive } else { DdlKind::Schema });
                names.push(at.name);
            }
            Statement::Truncate(t) => {
                worst(DdlKind::Destructive);
                names.extend(t.table_names.into_iter().map(|n| n.name));
            }
            Statement::Drop {
                object_type, names: n, ..
            } => {
                match object_type {
                    ObjectType::Index => worst(DdlKind::Schema),
                    ObjectType::Table | ObjectType::View | ObjectType::Schema | ObjectType::Database => {
                        worst(DdlKind::Destructive)
                    }
                    _ => continue,
                }
                if matches!(object_type, ObjectType::Schema | ObjectType::Database) {
                    // `DROP DATABASE d`: the name is the database
                    names.extend(n.into_iter().filter_map(|o| {
                        let d = o.0.first()?.as_ident()?.value.clone();
                        Some(ObjectName::from(vec![
                            sqlparser::ast::Ident::new(d),
                            sqlparser::ast::Ident::new(""),
                        ]))
                    }));
                } else {
                    names.extend(n);
                }
            }
            _ => {}
        }
    }
    let mut databases: Vec<String> = names.iter().filter_map(|n| parts(db, n)).map(|(d, _)| d).collect();
    databases.sort();
    databases.dedup();
    Ddl { kind, databases }
}

/// How drc's applier marks a DDL statement it replicates from zone `origin`: the
/// comment stays in the statement's text in the binlog, so every reader knows the
/// statement was applied by drc (loop suppression for statements, which carry no
/// marker row).
pub fn mark(origin: &str, sql: &str) -> String {
    format!("{APPLIED_MARKER}{origin} */ {sql}")
}

/// The zone a statement was replicated from, when drc's applier wrote it.
pub fn applied_from(sql: &str) -> Option<&str> {
    let rest = sql.trim_start().strip_prefix(APPLIED_MARKER)?;
    rest.split_once(" */").map(|(origin, _)| origin)
}

const APPLIED_MARKER: &str = "/* drc-ddl from=";

fn parts(default_db: &str, n: &ObjectName) -> Option<(String, String)> {
    let idents: Vec<String> =
        n.0.iter()
            .map(|p| p.as_ident().map(|i| i.value.clone()))
            .collect::<Option<_>>()?;
    match idents.as_slice() {
        [t] => Some((default_db.to_string(), t.clone())),
        [d, t] => Some((d.clone(), t.clone())),
        _ => None,
    }
}

fn rename(db: &str, from: &ObjectName, to: &ObjectName) -> Option<Rename> {
    let (fd, ft) = parts(db, from)?;
    let (td, tt) = parts(db, to)?;
    (fd == td).then_some(Rename {
        db: fd,
        from: ft,
        to: tt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_kinds_and_databases() {
        let k = |sql: &str| classify("shop", sql);
        assert_eq!(k("ALTER TABLE orders ADD COLUMN x INT").kind, DdlKind::Schema);
        assert_eq!(k("ALTER TABLE orders ADD COLUMN x INT").databases, ["shop"]);
        assert_eq!(k("ALTER TABLE other.t DROP COLUMN x").kind, DdlKind::Destructive);
        assert_eq!(k("ALTER TABLE other.t DROP COLUMN x").databases, ["other"]);
        assert_eq!(k("CREATE TABLE t (id INT PRIMARY KEY)").kind, DdlKind::Schema);
        assert_eq!(k("CREATE INDEX i ON t (id)").kind, DdlKind::Schema);
        assert_eq!(k("DROP TABLE t").kind, DdlKind::Destructive);
        assert_eq!(k("TRUNCATE TABLE t").kind, DdlKind::Destructive);
        assert_eq!(k("RENAME TABLE a TO b").kind, DdlKind::Schema);
        assert_eq!(k("GRANT SELECT ON shop.* TO u").kind, DdlKind::Other);
        assert_eq!(k("not sql at all").kind, DdlKind::Other);
        let m = mark("a", "ALTER TABLE t ADD x INT");
        assert_eq!(applied_from(&m), Some("a"));
        assert_eq!(classify("shop", &m).kind, DdlKind::Schema, "the marker is a comment");
        assert_eq!(applied_from("ALTER TABLE t ADD x INT"), None);
    }

    #[test]
    fn truncates() {
        assert_eq!(
            truncated("shop", "TRUNCATE TABLE orders").unwrap(),
            [("shop".into(), "orders".into())]
        );
        assert_eq!(truncated("", "truncate `x`.`y`").unwrap(), [("x".into(), "y".into())]);
        assert!(truncated("shop", "DELETE FROM orders").unwrap().is_empty());
    }

    fn r(db: &str, from: &str, to: &str) -> Rename {
        Rename {
            db: db.into(),
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn renames_of_every_form() {
        assert_eq!(
            renames("shop", "RENAME TABLE orders TO orders2").unwrap(),
            vec![r("shop", "orders", "orders2")]
        );
        assert_eq!(
            renames(
                "",
                "RENAME TABLE `shop`.`orders` TO `shop`.`_orders_old`, `shop`.`_orders_new` TO `shop`.`orders`"
            )
            .unwrap(),
            vec![r("shop", "orders", "_orders_old"), r("shop", "_orders_new", "orders")],
            "pt-online-schema-change's swap"
        );
        assert_eq!(
            renames("shop", "ALTER TABLE orders RENAME TO o2").unwrap(),
            vec![r("shop", "orders", "o2")]
        );
        assert_eq!(
            renames("shop", "alter table `we``ird` rename as x").unwrap(),
            vec![r("shop", "we`ird", "x")]
        );
        assert_eq!(
            renames("shop", "RENAME TABLE orders TO other.orders").unwrap(),
            vec![],
            "to another database"
        );
        assert_eq!(renames("shop", "ALTER TABLE orders ADD COLUMN x INT").unwrap(), vec![]);
        assert!(renames("shop", "RENAME TABLE (").is_err());
    }

    #[test]
    fn column_changes_of_every_form() {
        let added = |c: &str, d: Option<&str>| ColumnChange::Added {
            db: "shop".into(),
            tbl: "orders".into(),
            column: c.into(),
            default: d.map(String::from),
        };
        let dropped = |c: &str| ColumnChange::Dropped {
            db: "shop".into(),
            tbl: "orders".into(),
            column: c.into(),
        };
        assert_eq!(
            column_changes("shop", "ALTER TABLE orders ADD COLUMN note VARCHAR(20) NULL").unwrap(),
            vec![added("note", None)]
        );
        assert_eq!(
            column_changes(
                "",
                "alter table `shop`.`orders` add column qty INT NOT NULL DEFAULT 7, add `tag` varchar(8) not null default 'x''y', add neg int default -2"
            )
            .unwrap(),
            vec![added("qty", Some("7")), added("tag", Some("x'y")), added("neg", Some("-2"))]
        );
        assert_eq!(
            column_changes(
                "shop",
                "ALTER TABLE orders ADD COLUMN at DATETIME DEFAULT CURRENT_TIMESTAMP"
            )
            .unwrap(),
            vec![added("at", None)],
            "an expression is no literal"
        );
        assert_eq!(
            column_changes("shop", "ALTER TABLE orders DROP COLUMN note, DROP qty").unwrap(),
            vec![dropped("note"), dropped("qty")]
        );
        assert_eq!(
            column_changes("shop", "ALTER TABLE orders CHANGE note memo VARCHAR(20)").unwrap(),
            vec![dropped("note"), added("memo", None)]
        );
        assert_eq!(
            column_changes("shop", "ALTER TABLE orders MODIFY note VARCHAR(40)").unwrap(),
            vec![]
        );
        assert_eq!(
            column_changes("shop", "ALTER TABLE orders ADD INDEX (note)").unwrap(),
            vec![]
        );
        assert!(column_changes("shop", "ALTER TABLE orders ADD COLUMN (").is_err());
    }
}
