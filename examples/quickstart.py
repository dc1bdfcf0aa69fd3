import paygate
from paygate import EventType, Money

gw = paygate.connect("fake")  # or "stripe", "paypal", "square" with their settings

@gw.on(EventType.PAYMENT_SUCCEEDED)
def fulfil(event: paygate.Fact) -> None:
    print("paid:", event.order_id)

payment = gw.create_payment(order_id="ord_1", amount=Money.of("19.99", "USD"),
                            payment_method="tok_visa")
print(payment.status)  # succeeded

# the provider's signed webhooks are the truth; feed them to the gateway:
for delivery in gw.provider.take_webhooks():
    gw.handle_webhook(delivery.body, delivery.headers)

refund = gw.refund(payment.id, amount=Money.of("5.00", "USD"))
print(gw.get_payment(payment.id).status)  # partially_refunded
gw.close()  # closes the store (or: with paygate.connect(...) as gw: ...)
