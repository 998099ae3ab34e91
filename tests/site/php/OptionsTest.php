<?php
/*
 * The settings page (options.php) rendered and posted against the stand-ins: the per-site
 * tab lists the installation's sites, secrets are never printed back, an empty secret
 * field keeps the current one, and "Properties to send" is kept as valid codes.
 */

use Bitrix\Main\Config\Option;
use Orderbridge\Config;

final class OptionsTest extends \Orderbridge\Tests\TestCase
{
	private const SITE_SECRET = 'whsec_c2Vjb25kLXN0b3JlLXNlY3JldC0xMjM0NTY3OA==';

	protected function setUp(): void
	{
		parent::setUp();
		\Bitrix\Main\SiteTable::$rows = [
			['LID' => 's2', 'NAME' => 'Shop B', 'SERVER_NAME' => 'b.example.ru', 'ACTIVE' => 'Y', 'SORT' => 2],
			['LID' => 's1', 'NAME' => 'Shop A', 'SERVER_NAME' => 'a.example.ru', 'ACTIVE' => 'Y', 'SORT' => 1],
		];
		configure('https://orderbridge.example.ru', ['send_properties' => 'ADDRESS', 'sites' => json_encode([
			's2' => ['url' => 'https://b.example.ru', 'site_id' => 'shop-b', 'signing_secret' => self::SITE_SECRET],
		])]);
	}

	/** @testdox the Sites tab lists every site with its own URL and site id, and no secret is ever printed */
	public function testTheSitesTabListsEverySiteAndNoSecretIsPrinted(): void
	{
		$html = options_page();
		ok(strpos($html, 'id="tab-sites"') !== false, 'a Sites tab');
		ok(strpos($html, 'Shop A [s1, a.example.ru]') < strpos($html, 'Shop B [s2, b.example.ru]'), 'both sites, by SORT');
		ok(strpos($html, 'name="sites[s2][url]" value="https://b.example.ru"') !== false, 's2 shows its own URL');
		ok(strpos($html, 'name="sites[s1][url]" value="" placeholder="https://orderbridge.example.ru"') !== false,
			's1 has none: the global one is the placeholder');
		ok(strpos($html, 'name="send_properties" value="ADDRESS"') !== false, 'Properties to send');
		ok(strpos($html, SECRET) === false && strpos($html, self::SITE_SECRET) === false, 'no secret in the page');
		ok(strpos($html, 'name="sites[s2][signing_secret]" value=""') !== false, 'the secret field is empty');
	}

	/** @testdox saving keeps a site's secret when its field is empty, excludes an unticked site, and normalises the property codes */
	public function testSavingKeepsASiteSecretExcludesAnUntickedSite(): void
	{
		$redirect = options_post([
			'url' => 'https://orderbridge.example.ru/', 'signing_secret' => '', 'site_id' => 'shop.example.ru', 'timeout' => '2',
			'send_properties' => ' CITY,ADDRESS;CITY ',
			'sites' => [
				's1' => ['url' => 'https://a.example.ru/', 'site_id' => 'shop-a', 'signing_secret' => '', 'enabled' => 'Y'],
				's2' => ['url' => 'https://b.example.ru', 'site_id' => 'shop-b', 'signing_secret' => ''],
			],
		]);
		ok($redirect, 'saved, then redirected back to the page');
		$config = Config::load();
		eq('CITY, ADDRESS', Option::get(Config::MODULE_ID, 'send_properties'));
		eq(SECRET, $config->secret, 'the global secret is kept too');
		$s1 = $config->forSite('s1');
		eq(['https://a.example.ru', 'shop-a', SECRET, true], [$s1->url, $s1->siteId, $s1->secret, $s1->enabled]);
		$s2 = $config->forSite('s2');
		eq([self::SITE_SECRET, false], [$s2->secret, $s2->enabled], 'secret kept, unticked = excluded');
	}

	/** @testdox a bad per-site secret or URL is refused, named by its site, and nothing is saved */
	public function testABadPerSiteSecretOrUrlIsRefused(): void
	{
		$before = Option::$values;
		$html = '';
		$redirect = options_post([
			'url' => 'https://orderbridge.example.ru', 'timeout' => '2', 'send_properties' => 'ADDRESS',
			'sites' => ['s1' => ['url' => 'ftp://a.example.ru', 'signing_secret' => 'whsec_short', 'enabled' => 'Y']],
		], $html);
		ok(!$redirect, 'not saved');
		ok(strpos($html, "must start with http:// or https://. [s1]") !== false, "the URL error names the site: " . substr($html, 0, 600));
		ok(strpos($html, 'base64 of 16 to 64 bytes. [s1]') !== false, 'the secret error names the site');
		ok(strpos($html, 'whsec_short') === false, 'the refused secret is not echoed');
		eq($before, Option::$values);
	}
}

/** Posts the settings form; true when the page saved and redirected, else $html is the page with its errors. */
function options_post(array $post, string &$html = ''): bool
{
	$_SERVER['REQUEST_METHOD'] = 'POST';
	$_POST = $post + ['save' => 'Save', 'sessid' => bitrix_sessid()];
	$_REQUEST = $_POST;
	try {
		$html = options_page();
		return false;
	} catch (\LocalRedirected $e) {
		return true;
	} finally {
		$_SERVER['REQUEST_METHOD'] = 'GET';
		$_POST = $_REQUEST = [];
	}
}
