-- POST /api/v1/cases at a set pace: each connection waits its argument in milliseconds
-- before each request (benches/events.sh sets it so that the connections together send
-- about RATE creates per second). The body is a case with one line item.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{"case": {"subject": "Paced", "priority": "High"},
 "line_items": [{"sku": "TONER-1", "quantity": 2, "unit_price": {"amount_minor": 1999, "currency": "EUR"}}]}]]
local pause = 20
function init(args)
  if args[1] then pause = tonumber(args[1]) end
end
function delay()
  return pause
end
