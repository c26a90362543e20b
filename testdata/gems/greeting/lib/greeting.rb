module Greeting
  def self.hello(name)
    "hello #{name} from the ruby DU"
  end
end
