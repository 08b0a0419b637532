-- wrk script for the POST scenarios of scripts/bench.sh:
--   wrk ... -s bench/body.lua URL -- METHOD BODY_FILE CONTENT_TYPE
-- Reads the body once per thread; wrk builds the request after init().
function init(args)
  local method, path, ctype = args[1], args[2], args[3]
  local f = assert(io.open(path, "rb"))
  wrk.method = method
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = ctype
end
