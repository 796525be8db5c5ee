"""``/v1/tenants``: create, list, read and change tenants (admin token only)."""

# no `from __future__ import annotations`: FastAPI reads the handlers' real types

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from controller.api.bodies import TenantCreate, TenantPatch
from controller.api.errors import ADMIN, AUTHED, ApiError, responses
from controller.api.guards import Admin, Service, Who
from controller.api.responses import Tenant, TenantCreated, TenantDeleted, TenantList, TenantMe, TokenRotated

router = APIRouter(tags=["tenants"])

TenantId = Annotated[int, Path(ge=1, le=4094, description="tenant id")]


@router.get("/v1/tenants", responses=responses(*ADMIN), summary="Every tenant with quotas and usage (admin)",
            response_model=TenantList)
def list_tenants(who: Admin, service: Service) -> dict[str, Any]:
    return {"tenants": service.list_tenants(principal=who)}


@router.post("/v1/tenants", status_code=201, responses=responses(*ADMIN, 400, 409, 415, 422),
             response_model=TenantCreated,
             summary="Create a tenant; its token is returned once (admin)")
def create_tenant(body: TenantCreate, who: Admin, service: Service, response: Response) -> dict[str, Any]:
    tenant, token = service.create_tenant(body.name, body.quota_bps, body.max_reservations, principal=who)
    response.headers["Location"] = f"/v1/tenants/{tenant.id}"
    return {"id": tenant.id, "name": tenant.name, "quota_bps": tenant.quota_bps,
            "max_reservations": tenant.max_reservations, "token": token}


@router.get("/v1/tenants/me", responses=responses(*AUTHED, 403), response_model=TenantMe,
            summary="The calling tenant: quotas, usage and what is left (a tenant token)")
def my_tenant(who: Who, service: Service) -> dict[str, Any]:
    return service.my_tenant(who)


@router.api_route("/v1/tenants/me", methods=["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"],
                  include_in_schema=False)
def my_tenant_other_methods() -> None:
    # without this, PATCH/DELETE /v1/tenants/me would reach /v1/tenants/{tenant_id} (a 422) and a 405's
    # Allow would list that route's methods
    raise ApiError(405, "method_not_allowed", "Method Not Allowed", headers={"Allow": "GET"})


@router.get("/v1/tenants/{tenant_id}", responses=responses(*ADMIN, 404, 422), summary="One tenant (admin)",
            response_model=Tenant)
def get_tenant(tenant_id: TenantId, who: Admin, service: Service) -> dict[str, Any]:
    return service.get_tenant(tenant_id, principal=who)


@router.patch("/v1/tenants/{tenant_id}", responses=responses(*ADMIN, 400, 404, 409, 415, 422),
              response_model=Tenant,
              summary="Change a tenant's name or quotas (admin)")
def patch_tenant(tenant_id: TenantId, body: TenantPatch, who: Admin, service: Service) -> dict[str, Any]:
    fields = body.model_dump(exclude_unset=True)
    if fields.get("name", "") is None:
        raise ApiError(422, "invalid", "name: must not be null", field="name")
    return service.update_tenant(tenant_id, principal=who, **fields)


@router.delete("/v1/tenants/{tenant_id}", responses=responses(*ADMIN, 404, 422), response_model=TenantDeleted,
               summary="Delete a tenant: its reservations released, its token revoked (admin)")
def delete_tenant(tenant_id: TenantId, who: Admin, service: Service) -> dict[str, Any]:
    return service.delete_tenant(tenant_id, principal=who)


@router.post("/v1/tenants/{tenant_id}/token", responses=responses(*AUTHED, 403, 404, 422), response_model=TokenRotated,
             summary="A new token for the tenant, shown once; the old one stops working at once "
                     "(admin, or the tenant itself)")
def rotate_token(tenant_id: TenantId, who: Who, service: Service) -> dict[str, Any]:
    return service.rotate_tenant_token(tenant_id, principal=who)
