<?php
/* Several storefronts (LIDs) on one Bitrix: each site's orders go out with that site's settings. */

use Orderbridge\Config;

final class SitesTest extends \Orderbridge\Tests\TestCase
{
	private const OTHER_SECRET = 'whsec_c2Vjb25kLXN0b3JlLXNlY3JldC0xMjM0NTY3OA==';

	/** @testdox two sites with their own URL, site id and secret each send to their own orderbridge */
	public function testTwoSitesEachSendToTheirOwn(): void
	{
		$t = sites_configured();
		$a = individual_order(['LID' => 's1']);
		$a->save();
		$b = individual_order(['LID' => 's2']);
		$b->save();
		eq(['https://a.example.ru/v1/orders', 'https://b.example.ru/v1/orders'], array_column($t->requests, 'url'));
		eq(['shop-a', 'shop-b'], array_map(function ($r) {
			return json_decode($r['body'], true)['site'];
		}, $t->requests));
		ok(signed_with(SECRET, $t->requests[0]), 's1 has no secret of its own: the global one');
		ok(signed_with(self::OTHER_SECRET, $t->requests[1]), 's2 is signed with its own secret');
		ok(!signed_with(SECRET, $t->requests[1]), 'and not with the global one');
	}

	/** @testdox an excluded site sends nothing, and the log says so */
	public function testAnExcludedSiteSendsNothing(): void
	{
		$t = sites_configured();
		$order = individual_order(['LID' => 's3']);
		$order->save();
		$order->setField('STATUS_ID', 'P');
		$order->save();
		eq([], $t->requests);
		ok(strpos(log_text(), 'site s3 is excluded') !== false, log_text());
	}

	/** @testdox a site without settings of its own uses the global ones */
	public function testASiteWithoutSettingsOfItsOwnUsesTheGlobalOnes(): void
	{
		$t = sites_configured();
		individual_order(['LID' => 's4'])->save();
		eq('http://127.0.0.1:9/v1/orders', $t->requests[0]['url']);
		eq('shop.example.ru', json_decode($t->requests[0]['body'], true)['site']);
		eq('s4', json_decode($t->requests[0]['body'], true)['order']['lid'], 'the snapshot carries its LID for a re-send');
	}

	/** @testdox forSite: empty per-site values fall back to the global ones; bad LIDs and bad JSON are ignored */
	public function testForSiteFallsBackAndIgnoresBadEntries(): void
	{
		$config = Config::fromArray(['url' => 'https://global.example.ru/', 'signing_secret' => SECRET, 'site_id' => 'g',
			'sites' => json_encode([
				's1' => ['url' => ' ', 'site_id' => 'one', 'signing_secret' => ''],
				'bad lid' => ['url' => 'https://x.example.ru'],
				's2' => 'not an object',
				's3' => ['enabled' => false, 'url' => 'https://three.example.ru/'],
			])]);
		eq(['s1', 's3'], array_keys($config->sites));
		$one = $config->forSite('s1');
		eq(['https://global.example.ru', SECRET, 'one', true, 's1'],
			[$one->url, $one->secret, $one->siteId, $one->enabled, $one->lid]);
		$three = $config->forSite('s3');
		eq([false, 'https://three.example.ru'], [$three->enabled, $three->url]);
		eq('g', $config->forSite('s2')->siteId, 'a LID whose entry is not an object uses the global settings');
		eq('https://global.example.ru', $config->url, 'forSite() leaves the global settings as they are');
		eq([], Config::fromArray(['sites' => '{not json'])->sites);
	}

	/** @testdox "Properties to send" keeps valid codes once each, at most 100 */
	public function testPropertiesToSendKeepsValidCodes(): void
	{
		eq(['ADDRESS', 'CITY', 'ZIP-2'], Config::parseCodes(" ADDRESS,CITY;ADDRESS\nZIP-2, bad*code, " . str_repeat('A', 51)));
		$many = implode(',', array_map(function ($i) {
			return 'P' . $i;
		}, range(1, 150)));
		eq(100, count(Config::parseCodes($many)));
	}
}

/** Global settings plus s1 (own URL and site id), s2 (own URL, site id, secret), s3 (excluded). */
function sites_configured(): FakeTransport
{
	configure('http://127.0.0.1:9', ['sites' => json_encode([
		's1' => ['url' => 'https://a.example.ru', 'site_id' => 'shop-a'],
		's2' => ['url' => 'https://b.example.ru/', 'site_id' => 'shop-b', 'signing_secret' => 'whsec_c2Vjb25kLXN0b3JlLXNlY3JldC0xMjM0NTY3OA=='],
		's3' => ['enabled' => false],
	])]);
	install_module();
	$t = new FakeTransport();
	handlers_use($t);
	return $t;
}

/** The Standard Webhooks check, written again here: v1,base64(HMAC-SHA256(id.timestamp.body)). */
function signed_with(string $secret, array $request): bool
{
	$h = $request['headers'];
	$key = base64_decode(substr($secret, strlen('whsec_')));
	$expected = 'v1,' . base64_encode(hash_hmac('sha256', $h['webhook-id'] . '.' . $h['webhook-timestamp'] . '.'
		. $request['body'], $key, true));
	return hash_equals($expected, $h['webhook-signature']);
}
