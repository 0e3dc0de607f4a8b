//! The roles that `--schema source` names: a policy `TO some_role` fails to be created where the
//! role does not exist (grants are not copied: pg_dump runs with `--no-privileges`). Roles belong
//! to the server, not to the database, so a copy cannot bring them: a pull creates the missing
//! ones on the local server as NOLOGIN roles (they can own nothing and log in nowhere) and says
//! which; a push refuses by name and never creates roles on a remote.

use anyhow::{Context, Result};

use crate::{
    config::DbUrl,
    ctx::Ctx,
    pg::{client, ident::quote_ident},
};

/// Every role a policy of the database names (PUBLIC, oid 0, is no role).
const POLICY_ROLES_SQL: &str = "\
SELECT DISTINCT r.rolname
FROM pg_catalog.pg_policy p
CROSS JOIN LATERAL pg_catalog.unnest(p.polroles) AS u(oid)
JOIN pg_catalog.pg_roles r ON r.oid = u.oid
ORDER BY 1";

/// The roles that the source's schema names and the target's server lacks, by name.
pub fn missing_on_target(ctx: &Ctx, source: &DbUrl, target: &DbUrl) -> Result<Vec<String>> {
    ctx.block_on(async {
        let conn = client::connect(source, ctx.timeout()).await?;
        let named: Vec<String> = conn
            .query(POLICY_ROLES_SQL, &[])
            .await
            .with_context(|| format!("reading the roles the policies of {source} name"))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if named.is_empty() {
            return Ok(named);
        }
        let conn = client::connect(target, ctx.timeout()).await?;
        let present: Vec<String> = conn
            .query(
                "SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname = ANY($1)",
                &[&named],
            )
            .await
            .with_context(|| format!("reading which roles exist on the server of {target}"))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        Ok(named.into_iter().filter(|r| !present.contains(r)).collect())
    })
}

/// Creates `roles` on the server of `target` as NOLOGIN roles.
pub fn create_nologin(ctx: &Ctx, target: &DbUrl, roles: &[String]) -> Result<()> {
    ctx.block_on(async {
        let conn = client::connect(target, ctx.timeout()).await?;
        for role in roles {
            conn.batch_execute(&format!("CREATE ROLE {} NOLOGIN", quote_ident(role)))
                .await
                .with_context(|| {
                    format!(
                        "creating the role {role} (NOLOGIN), which the source's policies name, on \
                         the server of {target}: the local user needs CREATEROLE"
                    )
                })?;
        }
        anyhow::Ok(())
    })
}
