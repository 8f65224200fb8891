-- wrk script: POST the JSON body in the file named by WRK_BODY_FILE, every request.
-- Answers other than 200 are counted by wrk as "Non-2xx or 3xx responses".
local file = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
