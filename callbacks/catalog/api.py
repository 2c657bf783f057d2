"""PUT /api/catalog/products/{sku} and bulk POST /api/catalog/products (API key only).

A shop platform pushes its changes here. A bulk request is all or nothing like the importer: one
bad product refuses the whole request (422, every problem named as `products.N.field`), so
the platform never has to work out which half landed. A flask-smorest blueprint on the
storefront's Api: the bodies are loaded with rows.ProductSchema, the replies and errors are
documented in /openapi.json (and so fuzzed by schemathesis) like the rest of /api.
"""
from __future__ import annotations

from flask import current_app
from flask_smorest import abort
from marshmallow import RAISE, Schema, fields, validate

from callbacks.catalog import rows, table
from callbacks.catalog.cache import announce
from callbacks.rules.shop import PRODUCT_TYPES, Product
from callbacks.storefront.api import Blueprint
from callbacks.storefront.schemas import Num, Opt, Reply, Str
from callbacks.web import auth, errors
from callbacks.web.errors import summary
from callbacks.web.schemas import NOT_AN_OBJECT

bp = Blueprint("catalog", __name__, url_prefix="/api/catalog",
               description="The product catalog, for the shop platform (API key only).")
auth.require_api_key(bp)
errors.answer_body_errors(bp)
MAX_BULK = 1000


# -- bodies and replies --------------------------------------------------------------------
class ProductBodySchema(rows.ProductSchema):
    """PUT's body: the SKU is the URL's."""

    class Meta(rows.ProductSchema.Meta):
        exclude = ("reference",)


class ProductsBodySchema(Schema):
    error_messages = NOT_AN_OBJECT

    class Meta:
        unknown = RAISE

    products = fields.List(fields.Nested(rows.ProductSchema), required=True,
                           validate=validate.Length(1, MAX_BULK, error=f"Must hold 1 to {MAX_BULK} products."))


class CatalogProductSchema(Reply):
    """A product as pricing sees it (the database's, else the shop file's)."""

    reference = Str()
    name = Str()
    names = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    type = Str(validate=validate.OneOf(sorted(PRODUCT_TYPES)))
    tax_class = Str()
    prices = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    stock = Opt(fields.Integer())
    shipping_attributes = fields.Dict(keys=fields.String(), metadata={"description": (
        "Klarna's shipping_attributes: weight (g), dimensions {height, width, length} (mm), tags.")})


class ProductReplySchema(Reply):
    product = fields.Nested(CatalogProductSchema, required=True)


class CatalogWriteSchema(Reply):
    inserted = Num()
    updated = Num()
    unchanged = Num()
    version = Num()


class ProductWriteSchema(CatalogWriteSchema, ProductReplySchema):
    pass


# -- authentication ------------------------------------------------------------------------
def _refuse(errors: dict[str, list[str]]):
    abort(422, message=summary(errors), errors=errors)


def _write(products: list) -> table.Written:
    kco = current_app.extensions["kco"]
    with kco.store.write() as conn:
        written = table.upsert(conn, products)
    announce(kco.store, written.version)
    current_app.extensions["kco_catalog"].written(written.version)
    return written


# -- endpoints -------------------------------------------------------------------------------
@bp.put("/products/<path:sku>")
@bp.arguments(ProductBodySchema)
@bp.response(200, ProductWriteSchema, description="Updated (or unchanged).")
@bp.alt_response(201, schema=ProductWriteSchema, description="Created.")
@bp.documents(400, 401, 413, 422)
def put_product(body: dict, sku: str):
    """Create or update one product"""
    product, errors = rows.checked(current_app.extensions["kco"].shop, body, reference=sku)
    if errors:
        _refuse(errors)
    assert product is not None  # rows.checked gives a product or errors
    written = _write([product])
    return {"product": table.as_json(product), **written.as_dict()}, 201 if written.inserted else 200


@bp.post("/products")
@bp.arguments(ProductsBodySchema)
@bp.response(200, CatalogWriteSchema, description="Written.")
@bp.documents(400, 401, 413, 422)
def post_products(body: dict):
    """Create or update products, all or nothing"""
    shop = current_app.extensions["kco"].shop
    products: list[Product] = []
    errors: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    for i, data in enumerate(body["products"]):
        product, problems = rows.checked(shop, data)
        if product is not None and product.sku in seen:
            problems = {"reference": [f"Also products.{seen[product.sku]}."]}
        for field, messages in problems.items():
            errors[f"products.{i}.{field}"] = messages
        if product is not None and not problems:
            seen[product.sku] = i
            products.append(product)
    if errors:
        _refuse(errors)
    return _write(products).as_dict()


@bp.get("/products/<path:sku>")
@bp.response(200, ProductReplySchema, description="The product.")
@bp.documents(401, 404)
def get_product(sku: str):
    """One product as pricing sees it"""
    product = current_app.extensions["kco"].shop.products.get(sku)
    if product is None:
        abort(404, message=f"No product {sku!r}.", errors={"sku": ["Unknown SKU."]})
    return {"product": table.as_json(product)}
