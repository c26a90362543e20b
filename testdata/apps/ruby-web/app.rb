# A small Rack app: a greeting from the vendored gem at /, a health check at /health.
require "rack"
require "greeting"

class App
  def call(env)
    request = Rack::Request.new(env)
    case request.path_info
    when "/"
      name = request.params.fetch("name", "ruby")
      text(200, "#{Greeting.hello(name)}\n")
    when "/health"
      text(200, "ok\n")
    else
      text(404, "not found\n")
    end
  end

  private

  def text(status, body)
    [status, { "content-type" => "text/plain" }, [body]]
  end
end
