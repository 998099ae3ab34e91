<?php
/* Standard Webhooks signing and verification. */

use Orderbridge\Signature;

final class SignatureTest extends \Orderbridge\Tests\TestCase
{
	/** @testdox signing reproduces the Standard Webhooks reference vector */
	public function testSigningReproducesTheStandardWebhooksReferenceVector(): void
	{
		eq('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
			Signature::sign(SECRET, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'));
	}

	/** @testdox headers carry the id, the time of this send and the signature */
	public function testHeadersCarryTheIdTheTimeOfThis(): void
	{
		eq([
			'webhook-id' => 'msg_p5jXN8AQM9LWM0D4loKWxJek',
			'webhook-timestamp' => '1614265330',
			'webhook-signature' => 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
		], Signature::headers(SECRET, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'));
	}

	/** @testdox verify accepts a fresh signature and refuses old, future, altered or foreign ones */
	public function testVerifyAcceptsAFreshSignatureAndRefusesOld(): void
	{
		$now = 1773385500;
		$body = '{"order_id":"123","status":"P"}';
		$h = Signature::headers(SECRET, 'msg_1', $now, $body);
		ok(Signature::verify(SECRET, $h, $body, $now), 'fresh');
		ok(Signature::verify(SECRET, $h, $body, $now + 300), 'at the edge of the tolerance');
		ok(!Signature::verify(SECRET, $h, $body, $now + 301), 'older than 5 minutes');
		ok(!Signature::verify(SECRET, $h, $body, $now - 301), 'more than 5 minutes in the future');
		ok(!Signature::verify(SECRET, $h, $body . ' ', $now), 'body altered');
		$other = 'whsec_' . base64_encode(str_repeat('k', 32));
		ok(!Signature::verify($other, $h, $body, $now), 'another secret');
		$noSig = $h;
		unset($noSig['webhook-signature']);
		ok(!Signature::verify(SECRET, $noSig, $body, $now), 'no signature');
		$upper = array_combine(array_map('strtoupper', array_keys($h)), array_values($h));
		ok(Signature::verify(SECRET, $upper, $body, $now), 'header names in any case');
		$rotated = $h;
		$rotated['webhook-signature'] = 'v1,AAAA ' . $h['webhook-signature'];
		ok(Signature::verify(SECRET, $rotated, $body, $now), 'one of several signatures is enough');
	}

	/** @testdox a malformed secret is refused without being echoed */
	public function testAMalformedSecretIsRefusedWithoutBeingEchoed(): void
	{
		ok(Signature::key('whsec_' . base64_encode(str_repeat('k', 16))) !== '', '16 bytes, as orderbridge accepts');
		ok(Signature::key('whsec_' . base64_encode(str_repeat('k', 64))) !== '', '64 bytes');
		foreach (['MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'whsec_c2hvcnQ=', 'whsec_not base64!',
			'whsec_' . base64_encode(str_repeat('k', 15)), 'whsec_' . base64_encode(str_repeat('k', 65))] as $bad) {
			try {
				Signature::key($bad);
				ok(false, 'refused: ' . $bad);
			} catch (InvalidArgumentException $e) {
				ok(strpos($e->getMessage(), substr($bad, 6)) === false, 'message does not contain the secret');
			}
		}
	}
}
