require "minitest/autorun"
require "rack/mock"
require_relative "../app"

class AppTest < Minitest::Test
  def request
    Rack::MockRequest.new(App.new)
  end

  def test_greets
    response = request.get("/?name=tests")
    assert_equal 200, response.status
    assert_equal "hello tests from the ruby DU\n", response.body
  end

  def test_health
    assert_equal "ok\n", request.get("/health").body
  end

  def test_unknown_path
    assert_equal 404, request.get("/nothing").status
  end
end
