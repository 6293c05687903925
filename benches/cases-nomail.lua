-- POST /api/v1/cases: the contract body without its notification email (a case, three line items).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{"case": {"subject": "Printer on fire", "description": "Smoke from tray 2",
  "priority": "High", "origin": "Mobile", "contact": {"name": "Ada", "email": "ada@example.com"}},
 "line_items": [
  {"sku": "TONER-1", "description": "Toner", "quantity": 2, "unit_price": {"amount_minor": 1999, "currency": "EUR"}},
  {"sku": "DRUM-7", "quantity": 1, "unit_price": {"amount_minor": 4500, "currency": "EUR"}},
  {"sku": "FAN", "quantity": 3, "unit_price": {"amount_minor": 0, "currency": "JPY"}}]}]]
